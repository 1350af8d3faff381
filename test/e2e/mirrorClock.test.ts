/**
 * The mirror's clock check (point 4 of issue 21): production's Dovecot runs on the real clock,
 * the backup's 2 minutes ahead (libfaketime in its processes). A probe APPEND on each store
 * (src/imap/mirrorFolder.ts probeClock) measures the skew; above UMC_MIRROR_SKEW_ALERT_SECONDS
 * (60 s) the status report raises CLOCK_SKEW for that store, and the status page's row shows
 * the mirror's backlog, last run and both clocks. A world of its own: libfaketime also shifts
 * the file times Dovecot keeps INTERNALDATE in, which the other mirror tests compare.
 *
 * Break used: the alert compares the skew with the threshold the wrong way round
 * (status.ts mirrorAlerts `<`) -> this test fails with CLOCK_SKEW alerts for the production store.
 */
import { afterAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { startWorld, SAFETY_NET_TIMERS, ADMIN_TOKEN, BACKUP_ENDPOINT, ENDPOINT } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import type { DovecotHandle } from "../harness/dovecot.js";
import type { StatusReport } from "../../src/admin/status.js";

const w = await startWorld({
  users: ["m7"], quiet: true, disabledFunctions: SAFETY_NET_TIMERS,
  backupStore: { clockOffsetSeconds: 120 },
  profiles: [{ id: "dr", displayName: "Disaster recovery", mirror: { enabled: true } }],
});
afterAll(async () => { await w.stop(); });
const bc = w.bc!;

async function count(dc: DovecotHandle, user: string, name: string): Promise<number> {
  const c = new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth: { user, pass: `pw-${user}` }, logger: false });
  await c.connect();
  try { return (await c.mailboxOpen(name).catch(() => undefined))?.exists ?? 0; } finally { await c.logout(); }
}

describe("mirror clock check", () => {
  it("measures each store's clock by a probe APPEND, alerts CLOCK_SKEW for the backup 2 minutes ahead, and shows the mirror on the status page", async () => {
    await w.dc.lda("m7", avayaVoiceMessage({ id: "m7-0" }));
    const { linkId } = await w.link("m7", "m7@contoso.test", "dr");
    await expect.poll(async () => (await w.deps.state.getLink(linkId))?.kinds?.mirror?.skew, { timeout: 15_000 }).toBeDefined();
    const skew = (await w.deps.state.getLink(linkId))!.kinds!.mirror!.skew!;
    expect(Math.abs(skew[ENDPOINT]!)).toBeLessThanOrEqual(2);
    expect(skew[BACKUP_ENDPOINT]).toBeGreaterThanOrEqual(118);
    expect(skew[BACKUP_ENDPOINT]).toBeLessThanOrEqual(122);
    // The probe leaves nothing behind and is not mirrored.
    expect(await count(w.dc, "m7", "umconnect-clock")).toBe(0);
    expect(await count(bc, "m7", "umconnect-clock")).toBe(0);
    expect(await count(bc, "m7", "INBOX")).toBe(1);
    const get = (q = "") => fetch(`${w.host.url}/api/admin/status${q}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const report = (await (await get()).json()) as StatusReport;
    const skewAlerts = report.alerts.filter((a) => a.code === "CLOCK_SKEW" && a.linkId === linkId);
    expect(skewAlerts).toEqual([expect.objectContaining({ endpointId: BACKUP_ENDPOINT, severity: "warning" })]);
    expect(report.links.find((l) => l.linkId === linkId)?.mirror).toMatchObject({ items: 0, skew: { [BACKUP_ENDPOINT]: skew[BACKUP_ENDPOINT] } });
    const html = await (await get("?format=html")).text();
    expect(html).toContain(`${BACKUP_ENDPOINT} clock +${skew[BACKUP_ENDPOINT]} s`);
  }, 60_000);
});
