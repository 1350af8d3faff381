/**
 * The Graph behaviour the connector depends on, as one suite that runs against the simulator
 * and, when credentials are in the environment, against a real tenant.
 */
import { describe, expect, it } from "vitest";
import type { Client } from "@microsoft/microsoft-graph-client";

export function graphContract(name: string, target: () => { graph: Client; userId: string }) {
  describe(`Graph contract (${name})`, () => {
    const key = `contract-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const prop = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcSyncKey";
    it("creates a received (non-draft) item with extended properties and finds it by them", async () => {
      const { graph, userId } = target();
      const m = await graph.api(`/users/${userId}/mailFolders/inbox/messages`).header("Prefer", 'IdType="ImmutableId"').post({
        subject: "umconnect contract test", body: { contentType: "text", content: "test" },
        singleValueExtendedProperties: [{ id: "Integer 0x0E07", value: "0" }, { id: prop, value: key }],
      });
      expect(m.isDraft).toBe(false);
      expect(m.isRead).toBe(false);
      const found = await graph.api(`/users/${userId}/mailFolders/inbox/messages`)
        .filter(`singleValueExtendedProperties/Any(ep: ep/id eq '${prop}' and ep/value eq '${key}')`).select("id").get();
      expect(found.value.map((x: { id: string }) => x.id)).toContain(m.id);
      const moved = await graph.api(`/users/${userId}/messages/${m.id}/move`).header("Prefer", 'IdType="ImmutableId"').post({ destinationId: "deleteditems" });
      expect(moved.id).toBe(m.id);
      await graph.api(`/users/${userId}/messages/${m.id}`).delete();
    });
    it("answers an unknown delta token with 410", async () => {
      const { graph, userId } = target();
      await expect(graph.api(`/users/${userId}/mailFolders/inbox/messages/delta?$deltatoken=definitely-not-a-token`).get()).rejects.toMatchObject({ statusCode: expect.any(Number) });
    });
  });
}
