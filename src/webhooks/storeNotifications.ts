/**
 * Voice-store notifications (Dovecot Lua push in the test world, vendor hooks elsewhere).
 *
 * Authentication: `X-UMC-Timestamp: <unix seconds>` and
 * `X-UMC-Signature: sha256=<hex HMAC-SHA256(endpoint secret, "<timestamp>.<endpoint id>.push.<body>")>`
 * (the scheme Stripe and GitHub webhooks use, with the endpoint and direction inside the
 * signed text: src/security/endpointSecrets.ts). Each endpoint has its own secret, so one
 * customer's voice system cannot trigger runs on another's links. A timestamp outside
 * +-5 minutes is refused, and a
 * signature already taken inside that window is a replay and refused too (the replay memory
 * is per instance: a replay that lands on another instance only causes one extra, harmless
 * sync run). "Taken" means answered 202: a push answered 503, or still being handled when
 * its sender gave up waiting, is sent again with the same signature (Dovecot's HTTP client
 * retries a request as it was), and that retry must get through, or the push is lost.
 */
import crypto from "node:crypto";
import { z } from "zod";
import { ConnectorError } from "../errors.js";
import { verifySignature, type SigningKeys } from "../security/endpointSecrets.js";
import { MAX_STORE_BODY_BYTES } from "./limits.js";

export const STORE_SIGNATURE_HEADER = "x-umc-signature";
export const STORE_TIMESTAMP_HEADER = "x-umc-timestamp";
export { MAX_STORE_BODY_BYTES };
const MAX_SKEW_SECONDS = 300;

/** The single-secret form (alert webhooks; each has its own secret and receiver). */
export function signStoreNotification(secret: string, timestamp: number, body: string): string {
  return "sha256=" + crypto.createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

export class ReplayGuard {
  private taken = new Map<string, number>();
  constructor(private readonly windowSeconds = MAX_SKEW_SECONDS * 2) {}
  /** Whether this endpoint's signature was taken (answered 202) inside the window. */
  wasTaken(endpointId: string, signature: string, nowSeconds: number): boolean {
    for (const [sig, at] of this.taken) {
      if (nowSeconds - at <= this.windowSeconds) break; // insertion order = time order
      this.taken.delete(sig);
    }
    return this.taken.has(`${endpointId}|${signature}`);
  }
  /** Remembers a signature whose notification was taken: the same request again is a replay. */
  take(endpointId: string, signature: string, nowSeconds: number): void {
    this.taken.set(`${endpointId}|${signature}`, nowSeconds);
  }
}

const storeEvent = z.object({
  event: z.string().max(64),
  user: z.string().min(1).max(320),
  mailbox: z.string().max(1000).optional(),
  uid: z.number().int().nonnegative().optional(),
  uidvalidity: z.number().int().nonnegative().optional(),
});
const storeBody = z.object({ events: z.array(storeEvent).min(1).max(1000) });
export type StoreEvent = z.infer<typeof storeEvent>;

/**
 * Verifies and parses; throws UNAUTHORIZED / BAD_REQUEST / PAYLOAD_TOO_LARGE. The caller
 * calls `replay.take` once it has acted on the events (see the header: a failed answer is retried).
 */
export function verifyStoreNotification(args: {
  /** The endpoint's signing secrets; undefined when it has none (refused like a bad signature). */
  keys: SigningKeys | undefined;
  endpointId: string;
  body: string;
  timestampHeader: string | null;
  signatureHeader: string | null;
  nowSeconds: number;
  replay: ReplayGuard;
}): StoreEvent[] {
  if (Buffer.byteLength(args.body) > MAX_STORE_BODY_BYTES) throw new ConnectorError("PAYLOAD_TOO_LARGE", "store notification too large");
  const ts = Number(args.timestampHeader);
  if (!args.timestampHeader || !Number.isInteger(ts)) throw new ConnectorError("UNAUTHORIZED", "missing or malformed timestamp");
  if (Math.abs(args.nowSeconds - ts) > MAX_SKEW_SECONDS) throw new ConnectorError("UNAUTHORIZED", "timestamp outside the allowed window");
  if (!args.keys) throw new ConnectorError("UNAUTHORIZED", "no signing secret for this endpoint", { endpoint: args.endpointId.slice(0, 64) });
  if (!verifySignature(args.keys, args.endpointId, "push", ts, args.body, args.signatureHeader, args.nowSeconds * 1000)) throw new ConnectorError("UNAUTHORIZED", "bad signature", { endpoint: args.endpointId.slice(0, 64) });
  if (args.replay.wasTaken(args.endpointId, args.signatureHeader!, args.nowSeconds)) throw new ConnectorError("UNAUTHORIZED", "replayed notification");
  let json: unknown;
  try { json = JSON.parse(args.body); } catch { throw new ConnectorError("BAD_REQUEST", "store notification is not JSON"); }
  const parsed = storeBody.safeParse(json);
  if (!parsed.success) throw new ConnectorError("BAD_REQUEST", "store notification has an unexpected shape");
  return parsed.data.events;
}
