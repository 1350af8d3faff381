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
    const state = issueConsentState(secret, 1000, "0C0FFEE0-0000-4000-8000-000000000001", "operator-1");
    // The tenant the link was made for (and who made it) travel inside the signed state.
    await expect(verifyConsentState(secret, state, 1001, store)).resolves.toMatchObject({ t: "0c0ffee0-0000-4000-8000-000000000001", o: "operator-1" });
    await expect(verifyConsentState(secret, state, 1002, store)).rejects.toMatchObject({ problem: "replayed" });
  });
  it("refuses forged, tampered, expired and malformed states", async () => {
    const state = issueConsentState(secret, 1000, "0c0ffee0-0000-4000-8000-000000000001");
    const [data] = state.split(".");
    const tampered = Buffer.from(JSON.stringify({ n: "x", iat: 0, exp: 9e12 })).toString("base64url") + "." + state.split(".")[1];
    await expect(verifyConsentState("other-secret-other-secret-other-secret", state, 1001, nonces())).rejects.toMatchObject({ problem: "bad-signature" });
    await expect(verifyConsentState(secret, tampered, 1001, nonces())).rejects.toMatchObject({ problem: "bad-signature" });
    await expect(verifyConsentState(secret, state, 1000 + 16 * 60, nonces())).rejects.toMatchObject({ problem: "expired" });
    await expect(verifyConsentState(secret, data!, 1001, nonces())).rejects.toMatchObject({ problem: "malformed" });
    // Signed, but from before states named their tenant: refused.
    const untenanted = Buffer.from(JSON.stringify({ n: "y", iat: 1000, exp: 2000 })).toString("base64url");
    const mac = (await import("node:crypto")).createHmac("sha256", secret).update(`consent-state:${untenanted}`).digest("base64url");
    await expect(verifyConsentState(secret, `${untenanted}.${mac}`, 1001, nonces())).rejects.toMatchObject({ problem: "malformed" });
    await expect(verifyConsentState(secret, null, 1001, nonces())).rejects.toMatchObject({ problem: "malformed", code: "FORBIDDEN" });
  });
});
