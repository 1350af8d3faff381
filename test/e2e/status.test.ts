/** The admin status API and page: authentication, figures, reasons and alerts (Chromium screenshot kept). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import { axeViolations, launchChromium } from "../harness/chromium.js";
import { startWorld, ADMIN_TOKEN, type World } from "./world.js";
import { avayaVoiceMessage } from "../fixtures/voicemail.js";
import type { StatusReport } from "../../src/admin/status.js";
import { enqueueSync } from "../../src/app/syncQueue.js";

let w: World;
beforeAll(async () => { w = await startWorld({ users: ["2001", "2002"], timers: false, quiet: true }); }, 60_000);
afterAll(async () => { await w?.stop(); });

const get = (auth?: string, q = "") => fetch(`${w.host.url}/api/admin/status${q}`, { headers: auth ? { authorization: auth } : {} });

describe("admin status", () => {
  it("refuses requests without the admin token", async () => {
    expect((await get()).status).toBe(401);
    expect((await get("Bearer wrong")).status).toBe(401);
    expect((await get(`Basic ${ADMIN_TOKEN}`)).status).toBe(401);
  });

  it("shows sync state, skipped items with reasons, and alerts", async () => {
    const ok = await w.link("2001", "ok@contoso.test");
    const bad = await w.link("2002", "bad@contoso.test");
    await w.dc.lda("2001", avayaVoiceMessage({ id: "st-1" }));
    await w.dc.lda("2002", avayaVoiceMessage({ id: "st-2", noAudio: true })); // a voice message without audio
    await expect.poll(() => w.sim.outlook(ok.userId).messages("inbox").length, { timeout: 10_000 }).toBe(1);
    // The copy is in Outlook before its run writes the link's counts: wait for the run to end.
    await expect.poll(async () => (await w.deps.state.getLink(ok.linkId))?.unreadVoice, { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => ((await (await get(`Bearer ${ADMIN_TOKEN}`)).json()) as StatusReport).links.find((l) => l.linkId === bad.linkId)?.skipped.length, { timeout: 10_000 }).toBe(1);
    const r = (await (await get(`Bearer ${ADMIN_TOKEN}`)).json()) as StatusReport;
    expect(r.links.find((l) => l.linkId === ok.linkId)).toMatchObject({ state: "enabled", unreadVoice: 1, exchangeUser: "ok@contoso.test" });
    expect(r.links.find((l) => l.linkId === ok.linkId)?.subscriptionExpiresAt).toBeTruthy();
    expect(r.links.find((l) => l.linkId === bad.linkId)?.skipped[0]).toMatchObject({ code: "AUDIO_MISSING" });
    expect(r.alerts).toContainEqual(expect.objectContaining({ linkId: bad.linkId, code: "ITEMS_SKIPPED" }));
    expect(r.tenants[0]).toMatchObject({ links: 2 });
  });

  it("selects and pages the mailboxes (tenant, problems only, limit/after), alerts following the selection", async () => {
    const page = async (q: string) => (await (await get(`Bearer ${ADMIN_TOKEN}`, q)).json()) as StatusReport;
    const first = await page("?limit=1");
    expect(first.links.map((l) => l.linkId)).toEqual(["L-2001"]);
    expect(first.page).toEqual({ matching: 2, shown: 1, next: "L-2001" });
    const second = await page(`?limit=1&after=${first.page!.next}`);
    expect(second.links.map((l) => l.linkId)).toEqual(["L-2002"]);
    expect(second.page?.next).toBeUndefined();
    const problems = await page("?problems=1");
    expect(problems.links.map((l) => l.linkId)).toEqual(["L-2002"]);
    expect(problems.alerts.every((a) => a.linkId === "L-2002")).toBe(true);
    const other = await page("?tenant=00000000-0000-4000-8000-000000000000");
    expect(other).toMatchObject({ links: [], alerts: [], tenants: [], page: { matching: 0, shown: 0 } });
    expect((await get(`Bearer ${ADMIN_TOKEN}`, "?limit=abc&after=%00")).status).toBe(200);
    const html = await (await get(`Bearer ${ADMIN_TOKEN}`, "?format=html&limit=1")).text();
    expect(html).toContain("Mailboxes (1 of 2)");
    expect(html).toContain('href="?format=html&#38;limit=1&#38;after=L-2001"');
  });

  it("counts the MWI drift a reconcile run finds and corrects", async () => {
    const link = (await w.deps.state.getLink("L-2001"))!;
    // Let follow-ups of the previous test finish: an incremental run would pick the read up
    // from delta before the reconcile (correctly, but then there is no drift to count).
    await w.queueDrained();
    // Graph loses the notification of this read (and it was lost: counted for this mailbox).
    const faults = w.sim.mailboxFaults.arm(link.userId);
    faults.dropNotificationsNext = 100;
    w.sim.outlook(link.userId).markRead(w.sim.outlook(link.userId).messages("inbox")[0]!.id);
    expect(w.sim.mailboxFaults.delivered(link.userId).notificationsDropped).toBeGreaterThanOrEqual(1);
    faults.dropNotificationsNext = 0;
    await enqueueSync(w.deps.syncQueue, { linkId: "L-2001", reason: "reconcile", at: Date.now() });
    await expect.poll(async () => ((await (await get(`Bearer ${ADMIN_TOKEN}`)).json()) as StatusReport).links.find((l) => l.linkId === "L-2001")?.readDriftTotal, { timeout: 10_000 }).toBe(1);
    const c = await w.imap("2001");
    const m = await c.fetchOne("1", { flags: true }, { uid: true });
    await c.logout();
    expect(m !== false && m.flags?.has("\\Seen")).toBe(true);
  });

  it("selects by search, state and problem, sorts by any column, and shows one link with its runs (JSON)", async () => {
    const page = async (q: string) => (await (await get(`Bearer ${ADMIN_TOKEN}`, q)).json()) as StatusReport;
    expect((await page("?q=2002")).links.map((l) => l.linkId)).toEqual(["L-2002"]);
    expect((await page("?q=ok%40contoso")).links.map((l) => l.linkId)).toEqual(["L-2001"]);
    expect((await page("?state=paused")).links).toEqual([]);
    expect((await page("?state=enabled")).links).toHaveLength(2);
    expect((await page("?problem=ITEMS_SKIPPED")).links.map((l) => l.linkId)).toEqual(["L-2002"]);
    expect((await page("?sort=user")).links.map((l) => l.exchangeUser)).toEqual(["bad@contoso.test", "ok@contoso.test"]);
    expect((await page("?sort=user&dir=desc")).links.map((l) => l.exchangeUser)).toEqual(["ok@contoso.test", "bad@contoso.test"]);
    expect((await page("?sort=problems&dir=desc")).links[0]!.linkId).toBe("L-2002");
    const sorted = await page("?sort=mailbox&limit=1");
    expect(sorted.page).toEqual({ matching: 2, shown: 1, nextOffset: 1 });
    expect((await page("?sort=mailbox&limit=1&offset=1")).links.map((l) => l.linkId)).toEqual(["L-2002"]);
    // One link: its recent runs (the copy of st-1 among them) and this hour's figures.
    const one = (await (await get(`Bearer ${ADMIN_TOKEN}`, "?link=L-2001")).json()) as { link: { linkId: string }; runs: Array<{ kind: string; outcome: string; actions?: Record<string, number> }>; hours: Array<{ hour: string; runs: number }> };
    expect(one.link.linkId).toBe("L-2001");
    expect(one.runs.some((r) => r.kind === "voicemail" && r.outcome === "ran" && (r.actions?.createInGraph ?? 0) >= 1)).toBe(true);
    expect(one.hours.at(-1)).toMatchObject({ hour: new Date().toISOString().slice(0, 13) });
    expect(one.hours.at(-1)!.runs).toBeGreaterThanOrEqual(1);
    expect((await get(`Bearer ${ADMIN_TOKEN}`, "?link=L-nope")).status).toBe(404);
  });

  it("works in Chromium: search, sort, the link page, labelled charts, keyboard, a phone, axe-core finds nothing", async () => {
    const out = new URL("../../test-results/", import.meta.url).pathname;
    fs.mkdirSync(out, { recursive: true });
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const page = await context.newPage();
      const mailboxes = page.getByRole("region", { name: "Mailboxes table" });
      const response = await page.goto(`${w.host.url}/api/admin/status?format=html`);
      // Strict CSP: no script at all, forms only back to this page.
      expect(response!.headers()["content-security-policy"]).toBe("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
      expect(await page.locator("script").count()).toBe(0);
      expect(await page.locator("h1").textContent()).toBe("umconnect status");
      expect(await page.textContent("body")).toContain("could not be copied");
      // Keyboard: the first Tab reaches the skip link, which leads to the content.
      await page.keyboard.press("Tab");
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
      // Charts: one pair per tenant, each an image with a title and a description of its figures.
      const charts = page.locator("svg[role=img]");
      expect(await charts.count()).toBe(2);
      for (let i = 0; i < 2; i++) {
        const [t, d] = (await charts.nth(i).getAttribute("aria-labelledby"))!.split(" ");
        expect(await page.locator(`[id="${t}"]`).textContent()).toMatch(/^Tenant .*: (runs per hour|sync lag per hour)/);
        expect(await page.locator(`[id="${d}"]`).textContent()).toMatch(/per hour, UTC, last 24 hours .*: \d\d:00 \d/);
      }
      expect(await axeViolations(page)).toEqual([]);
      await page.screenshot({ path: `${out}status.png`, fullPage: true });
      // Search (a GET form: allowed back to this page by the CSP).
      await page.getByLabel("Search (link, mailbox, user)").fill("2002");
      await page.getByRole("button", { name: "Show" }).click();
      await page.waitForURL(/q=2002/);
      expect(await mailboxes.locator("tbody tr th[scope=row]").allTextContents()).toEqual(["2002@voice-1"]);
      // Sort by a column, then the other way; the header says which.
      await page.goto(`${w.host.url}/api/admin/status?format=html`);
      await page.getByRole("link", { name: /^Exchange user/ }).click();
      await page.waitForURL(/sort=user&dir=asc/);
      expect(await page.locator("th[aria-sort=ascending]").textContent()).toMatch(/^Exchange user/);
      expect(await mailboxes.locator("tbody tr td:nth-child(2)").allTextContents()).toEqual(["bad@contoso.test", "ok@contoso.test"]);
      await page.getByRole("link", { name: /^Exchange user/ }).click();
      await page.waitForURL(/sort=user&dir=desc/);
      expect(await page.locator("th[aria-sort=descending]").count()).toBe(1);
      expect(await mailboxes.locator("tbody tr td:nth-child(2)").allTextContents()).toEqual(["ok@contoso.test", "bad@contoso.test"]);
      // The link page: recent runs, subscription state, its own charts.
      await page.getByRole("link", { name: "2001@voice-1" }).click();
      await page.waitForURL(/link=L-2001/);
      expect(await page.locator("h1").textContent()).toBe("2001@voice-1 ↔ ok@contoso.test");
      const runs = page.getByRole("region", { name: "Recent runs table" }).locator("tbody tr");
      expect(await runs.count()).toBeGreaterThanOrEqual(1);
      expect(await runs.allTextContents()).toContainEqual(expect.stringMatching(/voicemail.*ran.*createInGraph 1/));
      expect(await page.getByRole("heading", { name: "Subscriptions" }).count()).toBe(1);
      expect(await page.textContent("#h-subs + p")).toMatch(/Graph subscription until: \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
      expect(await page.locator("svg[role=img] > title").allTextContents()).toEqual(["Link 2001@voice-1: runs per hour that changed something or failed", "Link 2001@voice-1: sync lag per hour (worst, seconds from trigger to done)"]);
      expect(await page.locator("svg[role=img] rect.bar").count()).toBeGreaterThanOrEqual(2);
      expect(await axeViolations(page)).toEqual([]);
      await page.screenshot({ path: `${out}status-link.png`, fullPage: true });
      // A phone: nothing wider than the screen but the tables' own scrolling regions.
      const phone = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 740 }, isMobile: true, extraHTTPHeaders: { authorization: `Bearer ${ADMIN_TOKEN}` } })).newPage();
      await phone.goto(`${w.host.url}/api/admin/status?format=html`);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
      expect(await axeViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${out}status-phone.png`, fullPage: true });
    } finally {
      await browser.close();
    }
  }, 90_000);
});
