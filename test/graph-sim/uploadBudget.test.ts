/**
 * The simulator's Outlook upload budget (uploadBudget.ts): 150 MB of POST/PATCH/PUT per 5
 * minutes per mailbox, over it 429 with a Retry-After that says when the upload fits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGraphSimulator, type GraphSimulator } from "./index.js";
import { msalFor } from "./clients.js";
import { OUTLOOK_UPLOAD_BUDGET_BYTES, OUTLOOK_UPLOAD_WINDOW_MS, UploadBudget } from "./uploadBudget.js";

const TENANT = "11111111-2222-3333-4444-555555555556";
const APP = "aaaaaaaa-0000-0000-0000-000000000002";

describe("upload budget", () => {
  it("is Outlook's documented limit by default", () => {
    const b = new UploadBudget();
    expect([b.bytes, b.windowMs]).toEqual([150 * 1024 * 1024, 5 * 60_000]);
    expect([OUTLOOK_UPLOAD_BUDGET_BYTES, OUTLOOK_UPLOAD_WINDOW_MS]).toEqual([157_286_400, 300_000]);
  });

  it("refuses what does not fit and says when it will", () => {
    let now = 0;
    const b = new UploadBudget({ bytes: 100, windowMs: 60_000, now: () => now });
    expect(b.charge("m", 60)).toEqual({ ok: true });
    now = 10_000;
    expect(b.charge("m", 30)).toEqual({ ok: true });
    now = 20_000;
    // 90 of 100 used; 40 more fit once the first 60 (sent at 0) leave the window at 60 s.
    expect(b.charge("m", 40)).toEqual({ ok: false, retryAfterSeconds: 40 });
    expect(b.charge("other", 40)).toEqual({ ok: true }); // per mailbox
    now = 60_001;
    expect(b.charge("m", 40)).toEqual({ ok: true });
    expect(b.stats.refused).toBe(1);
  });

  describe("in the simulator", () => {
    let sim: GraphSimulator;
    let token = "";
    beforeAll(async () => {
      sim = await startGraphSimulator({ uploadBudget: { bytes: 300_000 } });
      sim.addTenant({ tenantId: TENANT, apps: [{ clientId: APP, clientSecret: "s3cret-value", roles: ["Mail.ReadWrite", "User.Read.All"] }] });
      sim.addUser(TENANT, { id: "u-carol", userPrincipalName: "carol@contoso.test" });
      token = (await msalFor(sim.origin, TENANT, APP, { secret: "s3cret-value" }).acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] }))!.accessToken;
    });
    afterAll(async () => { await sim?.stop(); });

    const post = (bytes: number) => sim.handle("POST", "/v1.0/users/u-carol/mailFolders/inbox/messages", { authorization: `Bearer ${token}`, "content-type": "application/json" },
      Buffer.from(JSON.stringify({ subject: "x", attachments: [{ "@odata.type": "#microsoft.graph.fileAttachment", name: "a.bin", contentBytes: Buffer.alloc(bytes).toString("base64") }] })));

    it("answers 429 with Retry-After once a mailbox's uploads pass the budget", async () => {
      expect((await post(150_000)).status).toBe(201);
      const refused = await post(150_000);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers?.["Retry-After"])).toBeGreaterThan(250);
      // Reads are not uploads.
      expect((await sim.handle("GET", "/v1.0/users/u-carol/mailFolders/inbox/messages", { authorization: `Bearer ${token}` }, Buffer.alloc(0))).status).toBe(200);
    });
  });
});
