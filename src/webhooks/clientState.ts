/**
 * Graph subscription clientState: `<subject>.<nonce>.<mac>` where
 *   subject = the link and kind the subscription watches (graphNotifications.subscriptionSubject),
 *   nonce   = fresh for every subscription (6 random bytes + creation time in ms), so the value
 *             rotates with each new subscription (renewals create a new one) and a captured
 *             value dies with its subscription,
 *   mac     = HMAC-SHA256(secret, subject | tenantId | nonce), base64url, 32 characters: a value
 *             made for one tenant fails for a notification that claims another tenant.
 * The webhook checks the mac without a state lookup, then the subscription record
 * (subscription id, link, kind, tenant and nonce together; src/app/webhooks.ts).
 * clientState is at most 128 characters (https://learn.microsoft.com/en-us/graph/api/resources/subscription)
 * and is compared on every notification (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks).
 *
 * Subscriptions made before nonces existed carry `<subject>.<mac>` (mac over the subject only):
 * accepted only while their own record exists (it has no nonce) and rotated by the next upkeep.
 */
import crypto from "node:crypto";

const MAX_CLIENT_STATE = 128;
const MAC_CHARS = 32;

function mac(secret: string, subject: string, tenantId: string, nonce: string): string {
  return crypto.createHmac("sha256", secret).update(`graph-subscription:${subject}|${tenantId}|${nonce}`).digest("base64url").slice(0, MAC_CHARS);
}

function legacyMac(secret: string, subject: string): string {
  return crypto.createHmac("sha256", secret).update(`graph-subscription:${subject}`).digest("base64url");
}

/** A nonce for a new subscription: random, and carrying when it was made. */
export function newNonce(now = Date.now()): string {
  const b = Buffer.alloc(12);
  crypto.randomFillSync(b, 0, 6);
  b.writeUIntBE(now, 6, 6);
  return b.toString("base64url");
}

/** When the nonce was made (ms), or undefined when it is not one of ours. */
export function nonceTime(nonce: string): number | undefined {
  const b = Buffer.from(nonce, "base64url");
  return b.length === 12 ? b.readUIntBE(6, 6) : undefined;
}

export function makeClientState(secret: string, subject: string, tenantId: string, nonce: string): string {
  const value = `${subject}.${nonce}.${mac(secret, subject, tenantId, nonce)}`;
  if (value.length > MAX_CLIENT_STATE) throw new RangeError(`clientState for ${subject} exceeds ${MAX_CLIENT_STATE} characters`);
  return value;
}

export interface VerifiedClientState {
  subject: string;
  /** Undefined for the legacy format (no nonce, no tenant binding). */
  nonce?: string;
}

const equal = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
};

/** Constant-time check against the tenant the notification names; returns subject and nonce when genuine. */
export function verifyClientState(secret: string, clientState: unknown, tenantId: string | undefined): VerifiedClientState | undefined {
  if (typeof clientState !== "string" || clientState.length > MAX_CLIENT_STATE) return undefined;
  const last = clientState.lastIndexOf(".");
  if (last <= 0) return undefined;
  const given = clientState.slice(last + 1);
  const head = clientState.slice(0, last);
  const second = head.lastIndexOf(".");
  if (second > 0 && given.length === MAC_CHARS && tenantId) {
    const subject = head.slice(0, second);
    const nonce = head.slice(second + 1);
    if (nonceTime(nonce) !== undefined && equal(given, mac(secret, subject, tenantId, nonce))) return { subject, nonce };
  }
  return equal(given, legacyMac(secret, head)) ? { subject: head } : undefined;
}
