/**
 * The OAuth `state` for the admin-consent round trip: signed, expiring, single-use.
 * Format: base64url(JSON {n: nonce, iat, exp, t: tenant id, o?: operator}) "." base64url(HMAC-SHA256).
 * The tenant the link was made for is bound into it: the callback refuses any other tenant.
 * Signing makes it unforgeable, `exp` bounds its life, and the nonce is recorded as used on
 * the callback (ConsentNonceStore) so a replayed callback is refused
 * (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent: "state ... is
 * also used to prevent cross-site request forgery attacks").
 */
import crypto from "node:crypto";
import { ConnectorError } from "../errors.js";

export const CONSENT_STATE_TTL_SECONDS = 15 * 60;

export interface ConsentStatePayload {
  n: string;
  iat: number;
  exp: number;
  /** The tenant (GUID) the link was made for. */
  t: string;
  /** Who started it, when an operator did (Entra object id, or "local-token"). */
  o?: string;
}

export interface ConsentNonceStore {
  /** Records the nonce as used; false when it was used before. */
  useOnce(nonce: string, expiresAt: number): Promise<boolean>;
}

const sign = (secret: string, data: string) => crypto.createHmac("sha256", secret).update(`consent-state:${data}`).digest("base64url");

export function issueConsentState(secret: string, nowSeconds: number, tenantId: string, operator?: string): string {
  const payload: ConsentStatePayload = { n: crypto.randomBytes(16).toString("base64url"), iat: nowSeconds, exp: nowSeconds + CONSENT_STATE_TTL_SECONDS, t: tenantId.toLowerCase(), ...(operator ? { o: operator } : {}) };
  const data = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${data}.${sign(secret, data)}`;
}

export type ConsentStateProblem = "malformed" | "bad-signature" | "expired" | "replayed";

export class ConsentStateError extends ConnectorError {
  constructor(readonly problem: ConsentStateProblem) {
    super("FORBIDDEN", `consent state ${problem}`, { httpStatus: 400 });
  }
}

export async function verifyConsentState(secret: string, state: string | null, nowSeconds: number, nonces: ConsentNonceStore): Promise<ConsentStatePayload> {
  if (!state || state.length > 1024) throw new ConsentStateError("malformed");
  const [data, mac, extra] = state.split(".");
  if (!data || !mac || extra !== undefined) throw new ConsentStateError("malformed");
  const expected = Buffer.from(sign(secret, data));
  const given = Buffer.from(mac);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw new ConsentStateError("bad-signature");
  let payload: ConsentStatePayload;
  try {
    payload = JSON.parse(Buffer.from(data, "base64url").toString("utf8")) as ConsentStatePayload;
  } catch {
    throw new ConsentStateError("malformed");
  }
  if (typeof payload.n !== "string" || typeof payload.exp !== "number" || typeof payload.t !== "string") throw new ConsentStateError("malformed");
  if (payload.exp < nowSeconds) throw new ConsentStateError("expired");
  if (!(await nonces.useOnce(payload.n, payload.exp))) throw new ConsentStateError("replayed");
  return payload;
}
