/**
 * TLS to the voice store, end to end, both ways stores offer it: implicit TLS (IMAPS, RFC 8314)
 * and STARTTLS on the plain port (RFC 3501 section 6.2.1). The store's certificate comes from
 * its own CA, trusted only through the endpoint's caBundle (not the process-wide test CA): a
 * deposit reaches Outlook over TLS, and the same store without the bundle is refused as
 * IMAP_TLS_FAILED, never silently accepted.
 */
import { describe, expect, it } from "vitest";
import { startWorld, ENDPOINT } from "./world.js";
import { enqueueSync } from "../../src/app/syncQueue.js";
import { connectMailbox } from "../../src/imap/endpoint.js";
import { isConnectorError } from "../../src/errors.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

describe.each(["implicit", "starttls"] as const)("store TLS: %s", (mode) => {
  it("syncs over TLS with the store's own CA bundle and refuses the store without it", async () => {
    // A mailbox per mode: the app caches Exchange folder ids per link id for the process.
    const mb = mode === "implicit" ? "7501" : "7502";
    const w = await startWorld({ users: [mb], timers: false, quiet: true, storeTls: mode });
    try {
      const { userId } = await w.link(mb, `tls-${mode}@contoso.test`);
      await w.dc.lda(mb, avayaVoiceMessage({ id: `tls-${mode}` }));
      await enqueueSync(w.deps.syncQueue, { linkId: `L-${mb}`, reason: "poll", at: Date.now() });
      await expect.poll(() => w.sim.outlook(userId).messages("inbox").length, { timeout: 30_000, message: JSON.stringify((await w.deps.state.getLink(`L-${mb}`))?.lastError ?? null) }).toBe(1);
      // Dovecot logs each login with "TLS" when the session was encrypted.
      const logins = w.dc.log().split("\n").filter((l) => /imap-login: Info: Login: /.test(l));
      expect(logins.length).toBeGreaterThan(0);
      expect(logins.every((l) => /\bTLS\b/.test(l))).toBe(true);
      const endpoint = (await w.deps.directory()).endpoint(ENDPOINT);
      expect(endpoint.tls).toBe(mode);
      const err = await connectMailbox({ ...endpoint, id: `${ENDPOINT}-no-bundle`, caBundle: undefined }, mb).catch((e: unknown) => e);
      expect(isConnectorError(err, "IMAP_TLS_FAILED")).toBe(true);
    } finally {
      await w.stop();
    }
  }, 120_000);
});
