/**
 * Admin consent in headless Chromium: the connector's start link -> the (simulated) Entra
 * adminconsent page -> the callback page, for consent granted, declined, a forged state and a
 * replayed callback. Screenshots are kept under test-results/ as artifacts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { startWorld, TENANT, APP, type World } from "./world.js";

let w: World;
let browser: Browser;
let page: Page;
const shots = new URL("../../test-results/", import.meta.url).pathname;

beforeAll(async () => {
  w = await startWorld({ users: ["9001"], timers: false, quiet: true });
  fs.mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
  // The test world's throwaway CA is not in Chromium's store; outside the test world TLS is verified.
  page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
}, 60_000);
afterAll(async () => { await browser?.close(); await w?.stop(); });

describe("admin consent", () => {
  it("connects a tenant and records the permissions its token carries", async () => {
    await w.deps.state.upsertTenant({ tenantId: TENANT, grantedRoles: [], status: "revoked" });
    await page.goto(`${w.host.url}/api/admin/consent/start?tenant=${TENANT}`);
    await expect.poll(() => page.locator("h1").textContent()).toBe("umconnect is connected");
    expect(await page.textContent("body")).toContain("Mail.ReadWrite");
    await page.screenshot({ path: `${shots}consent-granted.png` });
    const t = await w.deps.state.getTenant(TENANT);
    expect(t).toMatchObject({ status: "active", grantedRoles: expect.arrayContaining(["Mail.ReadWrite", "User.Read.All"]) });
  });

  it("refuses a replayed callback", async () => {
    await page.reload();
    expect(await page.locator("h1").textContent()).toBe("Consent link not accepted");
    expect(await page.textContent("body")).toContain("already used");
    await page.screenshot({ path: `${shots}consent-replayed.png` });
  });

  it("explains a declined consent", async () => {
    w.sim.consentDecision = "deny";
    await page.goto(`${w.host.url}/api/admin/consent/start?tenant=${TENANT}`);
    await expect.poll(() => page.locator("h1").textContent()).toBe("umconnect was not connected");
    expect(await page.textContent("body")).toContain("declined");
    await page.screenshot({ path: `${shots}consent-declined.png` });
    w.sim.consentDecision = "approve";
  });

  it("ignores a forged state", async () => {
    await page.goto(`${w.host.url}/api/admin/consent/callback?tenant=${TENANT}&admin_consent=True&state=forged.state`);
    expect(await page.locator("h1").textContent()).toBe("Consent link not accepted");
    expect(await page.textContent("body")).toContain("did not come from a consent link");
  });

  it("a second consent records what it granted, not the roles of the token the host kept", async () => {
    // The host keeps a tenant's token until shortly before it expires (src/graph/auth.ts); the
    // first test's consent left one for this tenant. Break seen red: the callback asking for a
    // kept token (no `fresh`) -> grantedRoles without Mail.Send.
    const before = ["Mail.ReadWrite", "User.Read.All", "Calendars.Read", "Contacts.ReadWrite", "GroupMember.Read.All"];
    w.sim.changeAppRoles(TENANT, APP, [...before, "Mail.Send"]);
    try {
      await page.goto(`${w.host.url}/api/admin/consent/start?tenant=${TENANT}`);
      await expect.poll(() => page.locator("h1").textContent()).toBe("umconnect is connected");
      expect((await w.deps.state.getTenant(TENANT))?.grantedRoles).toContain("Mail.Send");
    } finally { w.sim.changeAppRoles(TENANT, APP, before); }
  });
});
