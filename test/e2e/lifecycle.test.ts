/**
 * A user's life (issue 17, point 3) through the real triggers: the user loses the mailbox
 * (licence removed) or is deleted in Entra ID mid-run -> the run sees Graph's 404
 * (MailboxNotEnabledForRESTAPI / ErrorInvalidUser) -> the link becomes "userGone" with its own
 * alert, its subscriptions are deleted; `umconnect resume` brings it back once the mailbox is;
 * `umconnect pause` deletes subscriptions; `umconnect export` shows the current UPN.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, ENDPOINT, TENANT, type World } from "./world.js";
import { addGroup, addMember, removeMember } from "../graph-sim/groups.js";
import { reconcileFunction } from "../../functions/timers.js";
import { main } from "../../src/cli/main.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import { deleteUser, setMailboxEnabled } from "../graph-sim/directory.js";
import { statusReport } from "../../src/admin/status.js";

let w: World;
const ids: Record<string, { linkId: string; userId: string }> = {};
const inbox = (mb: string) => w.sim.outlook(ids[mb]!.userId).messages("inbox");
const link = (mb: string) => w.deps.state.getLink(ids[mb]!.linkId);
const simSubs = (mb: string) => [...w.sim.subscriptions.values()].filter((s) => s.resource.includes(ids[mb]!.userId));
async function umconnect(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

beforeAll(async () => {
  w = await startWorld({ users: ["4731", "4732", "4733"], quiet: true });
  Object.assign(process.env, w.env);
  ids["4731"] = await w.link("4731", "lic@contoso.test");
  ids["4732"] = await w.link("4732", "leaver@contoso.test");
  for (let i = 0; i < 200 && simSubs("4731").length + simSubs("4732").length < 2; i++) await new Promise((r) => setTimeout(r, 100));
}, 60_000);
afterAll(async () => { await w?.stop(); });

describe("user lifecycle", () => {
  it("a mailbox taken away mid-run: link userGone with its alert, subscriptions deleted; resume once it is back", async () => {
    await w.dc.lda("4731", avayaVoiceMessage({ id: "lic-1" }));
    await expect.poll(() => inbox("4731").length, { timeout: 15_000 }).toBe(1);
    setMailboxEnabled(w.sim, "lic@contoso.test", false);
    await w.dc.lda("4731", avayaVoiceMessage({ id: "lic-2" }));
    await expect.poll(async () => (await link("4731"))?.state, { timeout: 15_000 }).toBe("userGone");
    expect((await link("4731"))?.userGone?.message).toMatch(/MailboxNotEnabledForRESTAPI/);
    await expect.poll(() => w.deps.state.listSubscriptions({ linkId: ids["4731"]!.linkId }), { timeout: 10_000 }).toEqual([]);
    expect(simSubs("4731")).toEqual([]);
    const alerts = (await statusReport(w.deps)).alerts.filter((a) => a.linkId === ids["4731"]!.linkId);
    expect(alerts.map((a) => a.code)).toEqual(["USER_GONE"]);
    // The licence comes back; the admin resumes: the waiting message is copied, the subscription is back.
    setMailboxEnabled(w.sim, "lic@contoso.test", true);
    expect((await umconnect("resume", ids["4731"]!.linkId)).code).toBe(0);
    await expect.poll(() => inbox("4731").length, { timeout: 15_000 }).toBe(2);
    expect((await link("4731"))?.state).toBe("enabled");
    await expect.poll(() => simSubs("4731").length, { timeout: 15_000 }).toBe(1);
  }, 60_000);

  it("export shows the current UPN; pause deletes the subscriptions; a user deleted in Entra ID is noticed", async () => {
    w.sim.userByRef("leaver@contoso.test").userPrincipalName = "leaver.renamed@contoso.test";
    const exp = await umconnect("export", "--tenant", TENANT);
    expect(exp.stdout).toMatch(/^4732,voice-1,leaver\.renamed@contoso\.test,default$/m);
    expect((await umconnect("pause", ids["4732"]!.linkId)).code).toBe(0);
    await expect.poll(() => simSubs("4732").length, { timeout: 10_000 }).toBe(0);
    expect((await umconnect("resume", ids["4732"]!.linkId)).code).toBe(0);
    await expect.poll(() => simSubs("4732").length, { timeout: 15_000 }).toBe(1);
    deleteUser(w.sim, ids["4732"]!.userId);
    await w.dc.lda("4732", avayaVoiceMessage({ id: "gone-1" }));
    await expect.poll(async () => (await link("4732"))?.state, { timeout: 15_000 }).toBe("userGone");
    expect((await link("4732"))?.userGone?.message).toMatch(/ErrorInvalidUser/);
    await expect.poll(() => w.deps.state.listSubscriptions({ linkId: ids["4732"]!.linkId }), { timeout: 10_000 }).toEqual([]);
  }, 60_000);
});

describe("automatic linking from an Entra group", () => {
  it("members who join are linked by SMTP proxy address to the store's mailbox list; leavers are paused; rejoining resumes", async () => {
    const groupId = addGroup(w.sim, TENANT, "Voicemail users");
    const erin = w.sim.addUser(TENANT, { userPrincipalName: "erin@contoso.test", proxyAddresses: ["SMTP:erin@contoso.test", "smtp:e.voice@contoso.test"] });
    const frank = w.sim.addUser(TENANT, { userPrincipalName: "frank@contoso.test" });
    addMember(w.sim, groupId, erin.id);
    addMember(w.sim, groupId, frank.id);
    const map = path.join(os.tmpdir(), `umc-map-${process.pid}.csv`);
    fs.writeFileSync(map, "voiceMailbox,smtp\r\n4733,e.voice@contoso.test\r\n");
    const r = await umconnect("group-link", groupId, "--tenant", TENANT, "--endpoint", ENDPOINT, "--map", map, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ linked: [expect.any(String)], unmatched: ["frank@contoso.test"] });
    const link = await w.deps.state.findLinkByUser(TENANT, erin.id);
    expect(link).toMatchObject({ voiceMailbox: "4733", state: "enabled", upn: "erin@contoso.test" });
    await w.dc.lda("4733", avayaVoiceMessage({ id: "grp-1" }));
    await expect.poll(() => w.sim.outlook(erin.id).messages("inbox").length, { timeout: 15_000 }).toBe(1);
    // Erin leaves: the reconcile timer's group run pauses the link (and its subscriptions go).
    removeMember(w.sim, groupId, erin.id);
    const reconcile = reconcileFunction.handler as unknown as () => Promise<void>;
    await reconcile();
    expect((await w.deps.state.getLink(link!.linkId))?.state).toBe("paused");
    await expect.poll(() => w.deps.state.listSubscriptions({ linkId: link!.linkId }), { timeout: 10_000 }).toEqual([]);
    // Rejoins: resumed, nothing copied twice.
    addMember(w.sim, groupId, erin.id);
    await reconcile();
    expect((await w.deps.state.getLink(link!.linkId))?.state).toBe("enabled");
    await new Promise((res) => setTimeout(res, 2000));
    expect(w.sim.outlook(erin.id).messages("inbox")).toHaveLength(1);
  }, 60_000);
});
