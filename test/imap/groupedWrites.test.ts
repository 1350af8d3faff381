/**
 * Group commit on one folder (src/imap/groupedWrites.ts) against a real Dovecot: writes that
 * arrive while one is on the wire go out as one MULTIAPPEND or one UID EXPUNGE, each caller
 * gets its own UID, and a MULTIAPPEND the server refuses (all or none, RFC 3502) is sent again
 * one by one so only the bad message fails.
 *
 * Breaks seen red: the batcher sending one item per call -> "eight cards written at once"
 * (appendMany called 0 times, append 8); the refused group not retried one by one -> "a group
 * the server refuses" (every caller failed, the seven good cards not stored).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDovecot, type DovecotHandle } from "../harness/dovecot.js";
import { openVoiceMailbox, type VoiceMailboxSession } from "../../src/imap/voiceMailbox.js";
import type { ImapEndpoint } from "../../src/imap/endpoint.js";
import { groupedWrites } from "../../src/imap/groupedWrites.js";
import type { AppendItem } from "../../src/imap/multiAppend.js";

let dc: DovecotHandle;
const endpoint = (): ImapEndpoint => ({
  id: "grouped", host: dc.host, port: dc.port, tls: "plaintext", maxConnections: 4,
  auth: { mode: "master-separator", masterUser: dc.master.user, password: dc.master.pass },
});
const card = (n: number) => Buffer.from(`Subject: card ${n}\r\nX-UMC-Key: key-${n}\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nFN:Card ${n}\r\nEND:VCARD\r\n`);

beforeAll(async () => { dc = await startDovecot({ users: { "6101": "pw", "6102": "pw", "6103": "pw" } }); });
afterAll(async () => { await dc?.stop(); });

/** The real session, its folder writes counted (calls, and how many items each carried). */
function counted(s: VoiceMailboxSession) {
  const calls = { append: 0, appendMany: [] as number[], remove: 0, removeMany: [] as number[] };
  return {
    calls,
    folder: {
      append: (source: Buffer, flags?: string[]) => { calls.append++; return s.append(source, flags); },
      appendMany: (items: AppendItem[]) => { calls.appendMany.push(items.length); return s.appendMany(items); },
      remove: (uid: number) => { calls.remove++; return s.remove(uid); },
      removeMany: (uids: number[]) => { calls.removeMany.push(uids.length); return s.removeMany(uids); },
    },
  };
}

async function subjects(s: VoiceMailboxSession): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  await s.client.mailboxOpen("INBOX");
  for await (const m of s.client.fetch("1:*", { uid: true, envelope: true }, { uid: true })) out.set(m.uid, m.envelope?.subject ?? "");
  return out;
}

describe("grouped folder writes", () => {
  it("eight cards written at once: the first goes alone, the other seven in one MULTIAPPEND, each caller gets its own UID", async () => {
    const s = await openVoiceMailbox(endpoint(), "6101", { folder: "INBOX", removal: { mode: "expunge" } });
    try {
      const { calls, folder } = counted(s);
      const g = groupedWrites(folder);
      const uids = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) => g.append(card(n))));
      expect(new Set(uids).size).toBe(8);
      expect(calls).toMatchObject({ append: 1, appendMany: [7] });
      const stored = await subjects(s);
      uids.forEach((uid, i) => expect(stored.get(uid), `UID ${uid}`).toBe(`card ${i + 1}`));
      expect(stored.size).toBe(8);
    } finally { await s.close(); }
  });

  it("a group the server refuses (one empty message) is sent again one by one: the seven good cards are stored once, the empty one fails alone", async () => {
    const s = await openVoiceMailbox(endpoint(), "6102", { folder: "INBOX", removal: { mode: "expunge" } });
    try {
      const { calls, folder } = counted(s);
      const g = groupedWrites(folder);
      const sources = [card(1), card(2), card(3), Buffer.alloc(0), card(5), card(6), card(7), card(8)];
      const results = await Promise.allSettled(sources.map((b) => g.append(b)));
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
      expect(calls.appendMany).toEqual([7]);
      const stored = [...(await subjects(s)).values()].sort();
      expect(stored).toEqual(["card 1", "card 2", "card 3", "card 5", "card 6", "card 7", "card 8"]);
    } finally { await s.close(); }
  });

  it("removals that arrive together go out as one UID EXPUNGE, and only those messages go", async () => {
    const s = await openVoiceMailbox(endpoint(), "6103", { folder: "INBOX", removal: { mode: "expunge" } });
    try {
      const uids = await s.appendMany([1, 2, 3, 4, 5, 6, 7].map((n) => ({ source: card(n), flags: [] })));
      const { calls, folder } = counted(s);
      const g = groupedWrites(folder);
      await Promise.all(uids.slice(0, 6).map((u) => g.remove(u)));
      expect(calls).toMatchObject({ remove: 1, removeMany: [5] });
      expect([...(await subjects(s)).values()]).toEqual(["card 7"]);
    } finally { await s.close(); }
  });
});
