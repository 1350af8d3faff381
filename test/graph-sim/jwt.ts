/** Minimal JWT (RFC 7519) signing/verification for the simulator's tokens and client assertions. */
import crypto from "node:crypto";

export const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export function signHs256(payload: Record<string, unknown>, secret: Buffer): string {
  const head = b64url(JSON.stringify({ typ: "JWT", alg: "HS256" }));
  const body = b64url(JSON.stringify(payload));
  const sig = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export function decode(token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signingInput: string; signature: Buffer } | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0]!, "base64url").toString()) as Record<string, unknown>,
      payload: JSON.parse(Buffer.from(parts[1]!, "base64url").toString()) as Record<string, unknown>,
      signingInput: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2]!, "base64url"),
    };
  } catch {
    return undefined;
  }
}

export function verifyHs256(token: string, secret: Buffer): Record<string, unknown> | undefined {
  const d = decode(token);
  if (!d || d.header.alg !== "HS256") return undefined;
  const expected = crypto.createHmac("sha256", secret).update(d.signingInput).digest();
  if (expected.length !== d.signature.length || !crypto.timingSafeEqual(expected, d.signature)) return undefined;
  return d.payload;
}

/** Verifies an RS256/PS256 client assertion against a certificate (RFC 7523 section 3). */
export function verifyAssertion(token: string, certPem: string): { ok: true; payload: Record<string, unknown>; header: Record<string, unknown> } | { ok: false; reason: string } {
  const d = decode(token);
  if (!d) return { ok: false, reason: "malformed" };
  const cert = new crypto.X509Certificate(certPem);
  const thumbS256 = Buffer.from(cert.fingerprint256.replace(/:/g, ""), "hex").toString("base64url");
  const thumbS1 = Buffer.from(cert.fingerprint.replace(/:/g, ""), "hex").toString("base64url");
  if (d.header["x5t#S256"] !== thumbS256 && d.header.x5t !== thumbS1) return { ok: false, reason: "thumbprint does not match a registered certificate" };
  const key = cert.publicKey;
  const alg = d.header.alg;
  const ok = alg === "PS256"
    ? crypto.verify("sha256", Buffer.from(d.signingInput), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, d.signature)
    : alg === "RS256" ? crypto.verify("sha256", Buffer.from(d.signingInput), key, d.signature) : false;
  return ok ? { ok: true, payload: d.payload, header: d.header } : { ok: false, reason: "signature" };
}

/** RS256 (RFC 7518 section 3.3), as Entra ID signs its tokens. */
export function signRs256(payload: Record<string, unknown>, key: crypto.KeyObject, kid: string): string {
  const head = b64url(JSON.stringify({ typ: "JWT", alg: "RS256", kid }));
  const body = b64url(JSON.stringify(payload));
  const sig = crypto.sign("sha256", Buffer.from(`${head}.${body}`), key).toString("base64url");
  return `${head}.${body}.${sig}`;
}
