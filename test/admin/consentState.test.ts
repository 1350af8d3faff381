import { describe, expect, it } from "vitest";
import { issueConsentState, verifyConsentState, type ConsentNonceStore } from "../../src/admin/consentState.js";

const secret = "consent-secret-consent-secret-0123456789";
const nonces = (): ConsentNonceStore => {
  const used = new Set<string>();
  return { useOnce: async (n) => (used.has(n) ? false : (used.add(n), true)) };
};

describe("consent state", () => {
  it("round-trips once, then reads as replayed", async () => {
    const store = nonces();
    const state = issueConsentState(secret, 1000, "contoso.onmicrosoft.com");
    await expect(verifyConsentState(secret, state, 1001, store)).resolves.toMatchObject({ t: "contoso.onmicrosoft.com" });
    await expect(verifyConsentState(secret, state, 1002, store)).rejects.toMatchObject({ problem: "replayed" });
  });
  it("refuses forged, tampered, expired and malformed states", async () => {
    const state = issueConsentState(secret, 1000);
    const [data] = state.split(".");
    const tampered = Buffer.from(JSON.stringify({ n: "x", iat: 0, exp: 9e12 })).toString("base64url") + "." + state.split(".")[1];
    await expect(verifyConsentState("other-secret-other-secret-other-secret", state, 1001, nonces())).rejects.toMatchObject({ problem: "bad-signature" });
    await expect(verifyConsentState(secret, tampered, 1001, nonces())).rejects.toMatchObject({ problem: "bad-signature" });
    await expect(verifyConsentState(secret, state, 1000 + 16 * 60, nonces())).rejects.toMatchObject({ problem: "expired" });
    await expect(verifyConsentState(secret, data!, 1001, nonces())).rejects.toMatchObject({ problem: "malformed" });
    await expect(verifyConsentState(secret, null, 1001, nonces())).rejects.toMatchObject({ problem: "malformed", code: "FORBIDDEN" });
  });
});
