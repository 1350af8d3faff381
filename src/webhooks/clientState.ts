/**
 * Graph subscription clientState: `<linkId>.<mac>` where mac = HMAC-SHA256(secret, linkId),
 * base64url. The webhook can then authenticate a notification and find its mailbox without a
 * state lookup, which keeps the answer well under Graph's 3 s budget
 * (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks).
 * clientState is at most 128 characters
 * (https://learn.microsoft.com/en-us/graph/api/resources/subscription).
 */
import crypto from "node:crypto";

const MAX_CLIENT_STATE = 128;

function mac(secret: string, linkId: string): string {
  return crypto.createHmac("sha256", secret).update(`graph-subscription:${linkId}`).digest("base64url");
}

export function makeClientState(secret: string, linkId: string): string {
  const value = `${linkId}.${mac(secret, linkId)}`;
  if (value.length > MAX_CLIENT_STATE) throw new RangeError(`clientState for link ${linkId} exceeds ${MAX_CLIENT_STATE} characters`);
  return value;
}

/** Constant-time check; returns the link id when the clientState is genuine. */
export function verifyClientState(secret: string, clientState: unknown): string | undefined {
  if (typeof clientState !== "string" || clientState.length > MAX_CLIENT_STATE) return undefined;
  const dot = clientState.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const linkId = clientState.slice(0, dot);
  const given = Buffer.from(clientState.slice(dot + 1));
  const expected = Buffer.from(mac(secret, linkId));
  if (given.length !== expected.length) return undefined;
  return crypto.timingSafeEqual(given, expected) ? linkId : undefined;
}
