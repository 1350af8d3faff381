/**
 * Contract tests for the simulator's contacts and calendar, through the product's real Graph
 * client (rules and sources in README.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGraphSimulator, type GraphSimulator } from "./index.js";
import { graphClientFor, msalFor } from "./clients.js";
import type { Client } from "@microsoft/microsoft-graph-client";

const TENANT = "22222222-2222-3333-4444-555555555555";
const APP = "aaaaaaaa-0000-0000-0000-000000000009";
let sim: GraphSimulator;
let graph: Client;
let readOnly: Client;

beforeAll(async () => {
  sim = await startGraphSimulator();
  sim.addTenant({ tenantId: TENANT, apps: [
    { clientId: APP, clientSecret: "s3cret-value", roles: ["Contacts.ReadWrite", "Calendars.Read"] },
    { clientId: "mail-only", clientSecret: "s3cret-value", roles: ["Mail.ReadWrite"] },
  ] });
  sim.addUser(TENANT, { id: "u-carol", userPrincipalName: "carol@contoso.test" });
  graph = graphClientFor(sim.origin, msalFor(sim.origin, TENANT, APP, { secret: "s3cret-value" }));
  readOnly = graphClientFor(sim.origin, msalFor(sim.origin, TENANT, "mail-only", { secret: "s3cret-value" }));
});
afterAll(async () => { await sim?.stop(); });

async function drain(url: string, pageSize = 2): Promise<{ items: Array<Record<string, unknown>>; deltaLink: string; pages: number }> {
  const items: Array<Record<string, unknown>> = [];
  let next: string | undefined = url;
  let deltaLink = "";
  let pages = 0;
  while (next) {
    const page = await graph.api(next).header("Prefer", `odata.maxpagesize=${pageSize}`).get();
    pages++;
    items.push(...page.value);
    next = page["@odata.nextLink"];
    if (page["@odata.deltaLink"]) deltaLink = page["@odata.deltaLink"];
  }
  return { items, deltaLink, pages };
}

describe("contacts", () => {
  const KEY = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcSyncKey";

  it("creates, filters by extended property, patches only given properties, deletes", async () => {
    const created = await graph.api("/users/u-carol/contactFolders/contacts/contacts").post({
      givenName: "Ada", surname: "Lovelace", emailAddresses: [{ address: "ada@example.test", name: "Ada" }], imAddresses: ["ada@im"],
      singleValueExtendedProperties: [{ id: KEY, value: "k-1" }],
    });
    expect(created.parentFolderId).toBeTruthy();
    const found = await graph.api("/users/u-carol/contactFolders/contacts/contacts").filter(`singleValueExtendedProperties/Any(ep: ep/id eq '${KEY}' and ep/value eq 'k-1')`).get();
    expect(found.value.map((c: { id: string }) => c.id)).toEqual([created.id]);
    const patched = await graph.api(`/users/u-carol/contacts/${created.id}`).patch({ jobTitle: "Analyst" });
    expect(patched.imAddresses).toEqual(["ada@im"]); // untouched properties keep their values
    expect(patched.changeKey).not.toBe(created.changeKey);
    await graph.api(`/users/u-carol/contacts/${created.id}`).delete();
    await expect(graph.api(`/users/u-carol/contacts/${created.id}`).get()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("refuses unknown properties, more than three emails, and callers without Contacts permission", async () => {
    await expect(graph.api("/users/u-carol/contacts").post({ givenName: "X", favouriteColour: "blue" })).rejects.toMatchObject({ statusCode: 400 });
    await expect(graph.api("/users/u-carol/contacts").post({ emailAddresses: [1, 2, 3, 4].map((i) => ({ address: `a${i}@x.test` })) })).rejects.toMatchObject({ statusCode: 400 });
    await expect(readOnly.api("/users/u-carol/contacts").get()).rejects.toMatchObject({ statusCode: 403 });
  });

  it("follows contact delta with pages, reports edits and removals, and expires tokens with 410", async () => {
    const folder = await graph.api("/users/u-carol/contactFolders").post({ displayName: "Voice" });
    await expect(graph.api("/users/u-carol/contactFolders").post({ displayName: "voice" })).rejects.toMatchObject({ statusCode: 409 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await graph.api(`/users/u-carol/contactFolders/${folder.id}/contacts`).post({ displayName: `C${i}` })).id);
    const first = await drain(`/users/u-carol/contactFolders/${folder.id}/contacts/delta`);
    expect(first.items).toHaveLength(5);
    expect(first.pages).toBe(3);
    await graph.api(`/users/u-carol/contacts/${ids[0]}`).patch({ displayName: "C0 edited" });
    await graph.api(`/users/u-carol/contacts/${ids[1]}`).delete();
    const second = await drain(first.deltaLink);
    expect(second.items.find((c) => c.id === ids[0])?.displayName).toBe("C0 edited");
    expect(second.items.find((c) => c.id === ids[1])?.["@removed"]).toEqual({ reason: "deleted" });
    expect(second.items).toHaveLength(2);
    sim.expireDeltaTokens("u-carol");
    await expect(graph.api(second.deltaLink).get()).rejects.toMatchObject({ statusCode: 410 });
  });
});

describe("calendar", () => {
  const window = (from: string, to: string) => `/users/u-carol/calendarView/delta?startDateTime=${from}&endDateTime=${to}`;

  it("expands a daily series across a DST change in the event's zone, with exceptions and cancellations", async () => {
    const cal = sim.calendar("u-carol");
    const ev = cal.add({
      subject: "Stand-up", start: { dateTime: "2027-03-26T09:00:00.0000000", timeZone: "W. Europe Standard Time" }, end: { dateTime: "2027-03-26T09:15:00.0000000", timeZone: "W. Europe Standard Time" },
      recurrence: { pattern: { type: "daily", interval: 1 }, range: { type: "numbered", startDate: "2027-03-26", numberOfOccurrences: 5 } },
    });
    const list = await drain(window("2027-03-25T00:00:00Z", "2027-04-10T00:00:00Z"), 10);
    const mine = list.items.filter((e) => e.seriesMasterId === ev.id);
    expect(mine).toHaveLength(5);
    // 09:00 Berlin is 08:00 UTC before 28 March 2027 and 07:00 UTC from then on.
    expect(mine.map((e) => (e.start as { dateTime: string }).dateTime.slice(0, 16))).toEqual(["2027-03-26T08:00", "2027-03-27T08:00", "2027-03-28T07:00", "2027-03-29T07:00", "2027-03-30T07:00"]);
    expect(mine.every((e) => (e.start as { timeZone: string }).timeZone === "UTC" && e.type === "occurrence")).toBe(true);

    cal.changeOccurrence(ev.id, "2027-03-27T08:00:00.000Z", { changes: { subject: "Stand-up (moved)", start: { dateTime: "2027-03-27T10:00:00", timeZone: "UTC" }, end: { dateTime: "2027-03-27T10:15:00", timeZone: "UTC" } } });
    cal.changeOccurrence(ev.id, "2027-03-29T07:00:00.000Z", { deleted: true });
    const delta = await drain(list.deltaLink, 10);
    const moved = delta.items.find((e) => e.subject === "Stand-up (moved)")!;
    expect(moved.type).toBe("exception");
    expect((moved.start as { dateTime: string }).dateTime.slice(0, 16)).toBe("2027-03-27T10:00");
    expect(delta.items.filter((e) => e["@removed"])).toHaveLength(1);
  });

  it("requires the window, refuses $select, and reports changes outside the window as removals", async () => {
    await expect(graph.api("/users/u-carol/calendarView/delta").get()).rejects.toMatchObject({ statusCode: 400 });
    await expect(graph.api(`${window("2027-05-01T00:00:00Z", "2027-05-02T00:00:00Z")}&$select=subject`).get()).rejects.toMatchObject({ statusCode: 400 });
    const first = await drain(window("2027-05-01T00:00:00Z", "2027-05-02T00:00:00Z"));
    const outside = sim.calendar("u-carol").add({ subject: "Later", start: { dateTime: "2027-06-01T10:00:00", timeZone: "UTC" }, end: { dateTime: "2027-06-01T11:00:00", timeZone: "UTC" } });
    const next = await drain(first.deltaLink);
    expect(next.items).toEqual([expect.objectContaining({ id: outside.id, "@removed": { reason: "deleted" } })]);
  });

  it("returns all-day events as floating dates and private events with their sensitivity", async () => {
    const cal = sim.calendar("u-carol");
    cal.add({ subject: "Holiday", isAllDay: true, showAs: "oof", start: { dateTime: "2027-07-01T00:00:00", timeZone: "Pacific Standard Time" }, end: { dateTime: "2027-07-03T00:00:00", timeZone: "Pacific Standard Time" } });
    cal.add({ subject: "Doctor", sensitivity: "private", start: { dateTime: "2027-07-01T15:00:00", timeZone: "UTC" }, end: { dateTime: "2027-07-01T16:00:00", timeZone: "UTC" } });
    const r = await drain(window("2027-07-01T00:00:00Z", "2027-07-02T00:00:00Z"));
    const holiday = r.items.find((e) => e.subject === "Holiday")!;
    expect(holiday).toMatchObject({ isAllDay: true, showAs: "oof", start: { dateTime: "2027-07-01T00:00:00.0000000", timeZone: "UTC" }, end: { dateTime: "2027-07-03T00:00:00.0000000", timeZone: "UTC" } });
    expect(r.items.find((e) => e.subject === "Doctor")?.sensitivity).toBe("private");
  });
});
