import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, TENANT, ENDPOINT, type World } from "./world.js";
import { exportLinks, importLinks, readLinkCsv, setLinkState } from "../../src/admin/links.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";

let w: World;
beforeAll(async () => {
  w = await startWorld({ users: ["3001", "3002", "3003"], timers: false, quiet: true });
  w.sim.addUser(TENANT, { userPrincipalName: "ann@contoso.test", proxyAddresses: ["SMTP:ann@contoso.test", "smtp:ann.lee@contoso.test"] });
  w.sim.addUser(TENANT, { userPrincipalName: "ben@contoso.test" });
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("CSV rows", () => {
  it("reports malformed rows with line numbers", () => {
    const { problems } = readLinkCsv('voiceMailbox,endpointId,smtp,profileId\r\n3001,voice-1,ann@contoso.test,default\r\n"bad box",voice-1,not-an-address,default\r\n3003,voice-1\r\n3001,voice-1,ann@contoso.test,default\r\n');
    expect(problems).toEqual([
      'line 3: voice mailbox "bad box" is not valid',
      'line 3: "not-an-address" is not an SMTP address',
      "line 4: expected 4 fields (voiceMailbox,endpointId,smtp,profileId), found 2",
      "line 5: voice mailbox 3001 is already on line 2",
      "line 5: ann@contoso.test is already on line 2",
    ]);
  });
});

describe("linking mailboxes", () => {
  it("refuses a file with any bad row and imports nothing", async () => {
    const csv = `voiceMailbox,endpointId,smtp,profileId\n3001,${ENDPOINT},ann.lee@contoso.test,default\n3002,${ENDPOINT},nobody@contoso.test,default\n3003,unknown-pbx,ben@contoso.test,gold\n`;
    const err = await importLinks(w.deps, TENANT, csv).catch((e) => e);
    expect(err.code).toBe("BAD_REQUEST");
    expect(err.problems).toEqual([
      "line 3: no Exchange user has the address nobody@contoso.test",
      "line 4: unknown voice-store endpoint unknown-pbx",
      "line 4: unknown feature profile gold",
    ]);
    expect(await w.deps.state.listLinks({ tenantId: TENANT })).toEqual([]);
  });

  it("imports by SMTP proxy address, syncs, exports, and keeps links one-to-one", async () => {
    const csv = `voiceMailbox,endpointId,smtp,profileId\n3001,${ENDPOINT},ann.lee@contoso.test,default\n3002,${ENDPOINT},ben@contoso.test,default\n`;
    const progress: number[] = [];
    const { created } = await importLinks(w.deps, TENANT, csv, (done) => progress.push(done));
    expect(created.map((l) => [l.voiceMailbox, l.upn])).toEqual([["3001", "ann@contoso.test"], ["3002", "ben@contoso.test"]]);
    expect(progress.at(-1)).toBe(4);
    await w.dc.lda("3001", avayaVoiceMessage({ id: "imp-1" }));
    const ann = created[0]!;
    await expect.poll(() => w.sim.outlook(ann.userId).messages("inbox").length, { timeout: 10_000 }).toBe(1);
    expect(await exportLinks(w.deps, TENANT)).toBe(`voiceMailbox,endpointId,smtp,profileId\r\n3001,${ENDPOINT},ann@contoso.test,default\r\n3002,${ENDPOINT},ben@contoso.test,default\r\n`);
    const again = await importLinks(w.deps, TENANT, `voiceMailbox,endpointId,smtp,profileId\n3003,${ENDPOINT},ann@contoso.test,default\n`).catch((e) => e);
    expect(again.problems).toEqual(["line 2: ann@contoso.test is already linked"]);
  });

  it("pauses and resumes without duplicates or wipes", async () => {
    // The negative check ("nothing moved") comes after the run the push caused has been handled,
    // so it cannot pass merely because that run had not happened yet.
    const [ann] = await w.deps.state.listLinks({ tenantId: TENANT });
    await setLinkState(w.deps, ann!.linkId, "paused");
    await w.queueDrained(); // a run that started before the pause has ended
    const before = w.sim.outlook(ann!.userId).messages("inbox").length;
    await w.dc.lda(ann!.voiceMailbox, avayaVoiceMessage({ id: "paused-1" })); // its push queues a run before LDA returns
    await w.queueDrained(); // ... and that run has been handled (skipped: the link is paused)
    expect(w.sim.outlook(ann!.userId).messages("inbox").length).toBe(before); // nothing moved while paused
    await setLinkState(w.deps, ann!.linkId, "enabled");
    await expect.poll(() => w.sim.outlook(ann!.userId).messages("inbox").length, { timeout: 10_000 }).toBe(before + 1);
    await w.queueDrained(); // every run the resume caused is over: still one copy
    expect(w.sim.outlook(ann!.userId).messages("inbox").length).toBe(before + 1);
  });
});
