/**
 * Microsoft's published request/response examples, replayed as checks. Each case names the
 * documentation page its request and expected answer come from. The same function runs against
 * the simulator (docs-conformance.test.ts) and, when its variables are set, against a real
 * tenant (contract.test.ts), so one run against a developer tenant shows where they differ.
 * Only cases that need nothing but an app token and one mailbox are here; the delivery side
 * (validation, batching, retries, lifecycle events) needs a receiver Graph can reach and lives
 * in docs-conformance.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ResponseType, type Client } from "@microsoft/microsoft-graph-client";

export interface ConformanceTarget {
  graph: Client;
  userId: string;
  /** Token endpoint and app credentials (the invalid-scope case asks for a token itself). */
  token: { endpoint: string; clientId: string; secret: string };
}

const DOCS = "https://learn.microsoft.com/en-us/graph";
const PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color";

/** A received (non-draft) message in the inbox, as the connector creates them (user-post-messages + PR_MESSAGE_FLAGS). */
async function received(t: ConformanceTarget, subject: string, ext: Array<{ id: string; value: string }> = []) {
  return t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages`).post({
    subject, body: { contentType: "text", content: "conformance" }, singleValueExtendedProperties: [{ id: "Integer 0x0E07", value: "1" }, ...ext],
  }) as Promise<{ id: string; receivedDateTime: string }>;
}

/** The raw answer of a request expected to fail (the client's errors do not keep the body). */
async function rawError(req: { responseType(t: ResponseType): { get(): Promise<unknown> } }): Promise<{ statusCode: number; body: Record<string, unknown> }> {
  const res = await req.responseType(ResponseType.RAW).get() as Response;
  if (res.ok) throw new Error("the request succeeded");
  return { statusCode: res.status, body: await res.json() as Record<string, unknown> };
}

export function docsConformance(name: string, target: () => ConformanceTarget) {
  describe(`Microsoft's documented examples (${name})`, () => {
    it(`delta pages with Prefer: odata.maxpagesize and ends with a deltaLink (${DOCS}/api/message-delta, example 1)`, async () => {
      const t = target();
      for (let i = 0; i < 3; i++) await received(t, `delta page ${i}`);
      const res = await t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages/delta`).header("Prefer", "odata.maxpagesize=2").select("subject,isRead").responseType(ResponseType.RAW).get() as Response;
      expect(res.headers.get("preference-applied")).toMatch(/odata\.maxpagesize=2/i);
      const page = await res.json() as { value: unknown[]; "@odata.nextLink"?: string };
      expect(page.value.length).toBeLessThanOrEqual(2);
      expect(page["@odata.nextLink"]).toMatch(/messages\/delta\?/i);
      let next: string | undefined = page["@odata.nextLink"];
      let deltaLink: string | undefined;
      while (next) {
        const p = await t.graph.api(next).header("Prefer", "odata.maxpagesize=2").get() as { "@odata.nextLink"?: string; "@odata.deltaLink"?: string };
        next = p["@odata.nextLink"];
        deltaLink = p["@odata.deltaLink"];
      }
      expect(deltaLink).toMatch(/\$deltatoken=/i);
    });

    it(`delta takes $filter=receivedDateTime ge, $orderby=receivedDateTime desc and changeType=created (${DOCS}/api/message-delta, optional query parameters)`, async () => {
      const t = target();
      const m = await received(t, "delta filter");
      const since = new Date(Date.parse(m.receivedDateTime) - 1000).toISOString().replace(/\.\d+Z$/, "Z");
      const r = await t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages/delta?$filter=receivedDateTime+ge+${since}&$orderby=receivedDateTime+desc&changeType=created`).get() as { value: Array<{ id: string }> };
      expect(r.value.map((x) => x.id)).toContain(m.id);
      // A $filter delta does not support is refused, not silently ignored.
      expect((await rawError(t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages/delta?$filter=subject eq 'x'`))).statusCode).toBe(400);
    });

    it(`an unknown delta token is 410 Gone with a Location to restart from (${DOCS}/delta-query-overview)`, async () => {
      const t = target();
      const res = await t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages/delta?$deltatoken=not-a-token-at-all`).responseType(ResponseType.RAW).get() as Response;
      expect(res.status).toBe(410);
      expect(res.headers.get("location")).toMatch(/messages\/delta/i);
    });

    it(`well-known folder names, the key syntax mailFolders('Inbox') and case-insensitive segments (${DOCS}/api/resources/mailfolder, ${DOCS}/api/mailfolder-get)`, async () => {
      const t = target();
      const a = await t.graph.api(`/users/${t.userId}/mailFolders/inbox`).get() as { id: string };
      const b = await t.graph.api(`/users/${t.userId}/mailFolders('Inbox')`).get() as { id: string };
      const c = await t.graph.api(`/users/${t.userId}/mailfolders/${a.id}`).get() as { id: string };
      expect(b.id).toBe(a.id);
      expect(c.id).toBe(a.id);
      const msgs = await t.graph.api(`/users/${t.userId}/mailFolders('Inbox')/messages`).top(1).get() as { value: unknown[] };
      expect(Array.isArray(msgs.value)).toBe(true);
    });

    it(`every error envelope carries code, message and innerError with date and request ids (${DOCS}/errors)`, async () => {
      const t = target();
      for (const url of [`/users/${t.userId}/messages/AAMkAGI2THVSAAA=`, `/users/${t.userId}/contacts/AAMkAGI2THVSAAA=`, `/users/${t.userId}/events/AAMkAGI2THVSAAA=`]) {
        const e = await rawError(t.graph.api(url));
        expect(e.statusCode, url).toBeGreaterThanOrEqual(400);
        const err = e.body.error as { code: string; message: string; innerError?: Record<string, string> };
        expect(typeof err.code).toBe("string");
        expect(typeof err.message).toBe("string");
        expect(err.innerError?.["request-id"], url).toBeTruthy();
        expect(err.innerError?.date, url).toBeTruthy();
      }
    });

    it(`extended-property ids match case-insensitively, values case-sensitively (${DOCS}/api/singlevaluelegacyextendedproperty-get, example 2)`, async () => {
      const t = target();
      const value = `Green-${Date.now()}`;
      const m = await received(t, "extended property", [{ id: PROP, value }]);
      const find = async (id: string, v: string) => ((await t.graph.api(`/users/${t.userId}/mailFolders/inbox/messages`).filter(`singleValueExtendedProperties/Any(ep: ep/id eq '${id}' and ep/value eq '${v}')`).select("id").get()) as { value: Array<{ id: string }> }).value.map((x) => x.id);
      expect(await find("String {66F5A359-4659-4830-9070-00047EC6AC6E} Name COLOR", value)).toContain(m.id);
      expect(await find(PROP, value.toUpperCase())).not.toContain(m.id);
    });

    it(`$batch: every answer carries headers; dependsOn is honoured whatever the listed order; a failed dependency is 424 (${DOCS}/json-batching)`, async () => {
      const t = target();
      const r = await t.graph.api("/$batch").post({ requests: [
        { id: "3", method: "GET", url: `/users/${t.userId}/mailFolders/inbox`, dependsOn: ["2"] },
        { id: "2", method: "GET", url: `/users/${t.userId}/mailFolders/inbox`, dependsOn: ["1"] },
        { id: "1", method: "GET", url: `/users/${t.userId}/mailFolders/inbox` },
        { id: "5", method: "GET", url: `/users/${t.userId}/messages/AAMkAGI2THVSAAA=` },
        { id: "4", method: "GET", url: `/users/${t.userId}/mailFolders/inbox`, dependsOn: ["5"] },
      ] }) as { responses: Array<{ id: string; status: number; headers?: Record<string, string> }> };
      const byId = Object.fromEntries(r.responses.map((x) => [x.id, x]));
      expect([byId["1"]!.status, byId["2"]!.status, byId["3"]!.status]).toEqual([200, 200, 200]);
      expect(byId["5"]!.status).toBe(404);
      expect(byId["4"]!.status).toBe(424);
      for (const id of ["1", "2", "3", "5"]) expect(byId[id]!.headers?.["content-type"] ?? byId[id]!.headers?.["Content-Type"], id).toMatch(/application\/json/);
    });

    it(`the token endpoint refuses a scope whose resource does not exist (${"https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow"}, error response)`, async () => {
      const { token } = target();
      const res = await fetch(token.endpoint, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ client_id: token.clientId, client_secret: token.secret, grant_type: "client_credentials", scope: "https://graph.microsoft.com.invalid/.default" }) });
      expect(res.status).toBe(400);
      const body = await res.json() as { error: string; error_description: string; error_codes: number[]; trace_id: string; correlation_id: string };
      expect(body.error).toMatch(/^invalid_(resource|scope)$/);
      expect(body.error_description).toMatch(/^AADSTS\d+/);
      expect(body.error_codes.length).toBeGreaterThan(0);
      expect(body.trace_id && body.correlation_id).toBeTruthy();
    });
  });
}
