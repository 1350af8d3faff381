/**
 * One signing secret per voice-store endpoint (issue 12, point 3), and the rule for which Key
 * Vault secrets an endpoint may name (point 4).
 *
 * Names: an endpoint's secrets all start with its own prefix, `<id>--` (the id lowercased,
 * dots and underscores as dashes; Key Vault names are letters, digits and dashes and compare
 * case-insensitively). Ids are refused when they map to a name with `--` or a leading or
 * trailing dash, so no endpoint's prefix is the beginning of another's: whoever can write the
 * configuration table cannot make endpoint A read endpoint B's password or any of the app's
 * own secrets and send it to a host of their choosing.
 *
 * The signing secret is `<prefix>signing`. Its value is either the secret itself (made by hand,
 * e.g. `openssl rand -hex 32`) or, after `umconnect endpoint rotate-secret`, JSON
 * `{"current": "...", "previous": "...", "previousUntil": "<ISO time>"}`: during the overlap
 * window both are accepted on incoming pushes and outgoing callbacks carry both signatures
 * (as Stripe does while a webhook secret rolls: https://docs.stripe.com/webhooks#roll-endpoint-secrets),
 * so the voice system can be switched over at any moment inside it.
 *
 * Signed text: `<timestamp>.<endpoint id>.<direction>.<body>`, direction `push` (the voice
 * store to umconnect) or `callback` (umconnect to the voice store): a signature made for one
 * endpoint, or for the other direction, never verifies for another.
 */
import crypto from "node:crypto";
import { ConnectorError } from "../errors.js";

export type SigningDirection = "push" | "callback";

export interface SigningKeys {
  current: string;
  previous?: string;
  /** ISO time the previous secret stops being accepted. */
  previousUntil?: string;
}

/** Default overlap after a rotation: a day to reconfigure the voice system. */
export const DEFAULT_OVERLAP_SECONDS = 24 * 3600;
const MIN_SECRET_LENGTH = 32;

/** The Key Vault name form of an endpoint id, or undefined when the id cannot have an unambiguous prefix. */
export function secretPrefix(endpointId: string): string | undefined {
  const m = endpointId.toLowerCase().replace(/[._]/g, "-");
  return /^[a-z0-9]+(-[a-z0-9]+)*$/.test(m) ? `${m}--` : undefined;
}

export const signingSecretName = (endpointId: string): string | undefined => {
  const p = secretPrefix(endpointId);
  return p && `${p}signing`;
};

/** Why an endpoint may not name this secret for its password, or undefined when it may. */
export function passwordSecretProblem(endpointId: string, name: string): string | undefined {
  const p = secretPrefix(endpointId);
  if (!p) return `endpoint id ${endpointId} cannot name Key Vault secrets: use letters, digits and single dashes, dots or underscores`;
  const n = name.toLowerCase();
  if (!n.startsWith(p) || n.length === p.length) return `an endpoint may only name its own secrets: the name must start with "${p}" (so configuration cannot point one store's password, another customer's or the app's own secrets at a host)`;
  if (n === `${p}signing`) return `"${p}signing" is the endpoint's signing secret, not a password`;
  return undefined;
}

export function parseSigningKeys(value: string): SigningKeys {
  const v = value.trim();
  if (v.startsWith("{")) {
    let j: Partial<SigningKeys>;
    try { j = JSON.parse(v) as Partial<SigningKeys>; } catch { throw new ConnectorError("CONFIG_INVALID", "signing secret is not valid JSON"); }
    if (typeof j.current !== "string" || j.current.length < MIN_SECRET_LENGTH) throw new ConnectorError("CONFIG_INVALID", `signing secret: "current" must be at least ${MIN_SECRET_LENGTH} characters`);
    const keys: SigningKeys = { current: j.current };
    if (typeof j.previous === "string" && typeof j.previousUntil === "string" && !Number.isNaN(Date.parse(j.previousUntil))) Object.assign(keys, { previous: j.previous, previousUntil: j.previousUntil });
    return keys;
  }
  if (v.length < MIN_SECRET_LENGTH) throw new ConnectorError("CONFIG_INVALID", `signing secret must be at least ${MIN_SECRET_LENGTH} characters`);
  return { current: v };
}

/** The secrets valid now: the current one, and the previous one inside its overlap window. */
export function activeSecrets(keys: SigningKeys, nowMs = Date.now()): string[] {
  return keys.previous && keys.previousUntil && Date.parse(keys.previousUntil) > nowMs ? [keys.current, keys.previous] : [keys.current];
}

/** A new secret; the one it replaces stays accepted for `overlapSeconds`. */
export function rotatedKeys(old: SigningKeys | undefined, nowMs = Date.now(), overlapSeconds = DEFAULT_OVERLAP_SECONDS): SigningKeys {
  const current = crypto.randomBytes(32).toString("base64url");
  if (!old || overlapSeconds <= 0) return { current };
  return { current, previous: old.current, previousUntil: new Date(nowMs + overlapSeconds * 1000).toISOString() };
}

export function signedText(endpointId: string, direction: SigningDirection, timestamp: number, body: string): string {
  return `${timestamp}.${endpointId}.${direction}.${body}`;
}

export function signFor(secret: string, endpointId: string, direction: SigningDirection, timestamp: number, body: string): string {
  return "sha256=" + crypto.createHmac("sha256", secret).update(signedText(endpointId, direction, timestamp, body)).digest("hex");
}

/** The X-UMC-Signature value: one `sha256=` entry per active secret, the current one first. */
export function signatureHeader(keys: SigningKeys, endpointId: string, direction: SigningDirection, timestamp: number, body: string, nowMs = Date.now()): string {
  return activeSecrets(keys, nowMs).map((s) => signFor(s, endpointId, direction, timestamp, body)).join(", ");
}

/** True when any `sha256=` entry of the header matches any active secret (constant-time compare). */
export function verifySignature(keys: SigningKeys, endpointId: string, direction: SigningDirection, timestamp: number, body: string, header: string | null, nowMs = Date.now()): boolean {
  if (!header || header.length > 1000) return false;
  const given = header.split(",").map((s) => Buffer.from(s.trim())).filter((b) => b.length);
  let ok = false;
  for (const secret of activeSecrets(keys, nowMs)) {
    const expected = Buffer.from(signFor(secret, endpointId, direction, timestamp, body));
    for (const g of given) if (g.length === expected.length && crypto.timingSafeEqual(g, expected)) ok = true;
  }
  return ok;
}
