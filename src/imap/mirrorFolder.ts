/**
 * The mirror's two IMAP sides (src/sync/mirrorPorts.ts) over an open voice mailbox session:
 * the production folder (read only) and the backup folder (APPEND, STORE, UID EXPUNGE).
 *
 * Change detection (RFC 7162): a SELECT with QRESYNC (uidvalidity, modseq) reports the UIDs
 * expunged since as VANISHED (EARLIER); an unchanged HIGHESTMODSEQ means nothing changed, so a
 * no-op run sends no FETCH at all; otherwise one UID FETCH 1:* (...) (CHANGEDSINCE modseq)
 * returns exactly the new messages and those whose flags changed. Without CONDSTORE/QRESYNC,
 * or after a UIDVALIDITY change (RFC 3501 section 2.3.1.1), the folder is listed in full.
 */
import type { ImapFlow, FetchMessageObject, FetchQueryObject } from "imapflow";
import { ConnectorError } from "../errors.js";
import { mirrorIdentity, normalFlags, parseIdentity, type MirrorMessage } from "../sync/mirrorPlanner.js";
import type { MirrorFolderCursor, MirrorSourceChanges, MirrorSourcePort, MirrorTargetPort } from "../sync/mirrorPorts.js";
import { IMAP_COMMAND_DEADLINE_MS, withDeadline } from "../timeouts.js";
import { selectFolder, toImapError } from "./endpoint.js";
import { uidSets } from "./voiceMailbox.js";
import { multiAppend } from "./multiAppend.js";
import { PROBE_FOLDER } from "../sync/mirrorFolders.js";

/** The IMAP command counts of this process, by command (benchmark: no full listing on a no-op). */
export const mirrorCommands = new Map<string, number>();
/** Time spent waiting for each command, in ms (benchmark). */
export const mirrorCommandMs = new Map<string, number>();
const count = (what: string) => mirrorCommands.set(what, (mirrorCommands.get(what) ?? 0) + 1);

type Guard = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

function guardFor(client: ImapFlow, endpoint: string): Guard {
  return async (what, fn) => {
    count(what);
    const t = performance.now();
    try {
      return await withDeadline(fn(), IMAP_COMMAND_DEADLINE_MS, "IMAP_UNAVAILABLE", `IMAP ${what} on ${endpoint}`, { endpoint });
    } catch (e) {
      if (e instanceof ConnectorError && e.code === "IMAP_UNAVAILABLE" && /did not finish/.test(e.message)) client.close();
      throw toImapError(e, endpoint, what);
    } finally {
      mirrorCommandMs.set(what, (mirrorCommandMs.get(what) ?? 0) + performance.now() - t);
    }
  };
}

/** Message-ID from the fetched header lines (folded lines joined, RFC 5322 section 2.2.3). */
function messageIdOf(headers: Buffer | undefined): string | undefined {
  const text = headers?.toString("utf8").replace(/\r?\n[ \t]+/g, " ");
  return text?.match(/^message-id:\s*(.*?)\s*$/im)?.[1] || undefined;
}

const QUERY: FetchQueryObject = { uid: true, flags: true, internalDate: true, size: true, headers: ["message-id"] };

function toMessage(m: FetchMessageObject): MirrorMessage {
  const internalDate = m.internalDate ? new Date(m.internalDate) : undefined;
  return {
    uid: m.uid,
    identity: mirrorIdentity({ messageId: messageIdOf(m.headers), internalDate, size: m.size }),
    flags: normalFlags(m.flags ?? []),
    internalDate: internalDate?.toISOString(),
    size: m.size,
  };
}

async function listAll(client: ImapFlow, guard: Guard, exists: number, changedSince?: bigint): Promise<MirrorMessage[]> {
  const out: MirrorMessage[] = [];
  if (exists === 0) return out;
  await guard(changedSince === undefined ? "FETCH 1:*" : "FETCH CHANGEDSINCE", async () => {
    for await (const m of client.fetch("1:*", QUERY, changedSince === undefined ? {} : { changedSince })) out.push(toMessage(m));
  });
  return out;
}

async function listUids(client: ImapFlow, guard: Guard, uids: number[]): Promise<MirrorMessage[]> {
  const out: MirrorMessage[] = [];
  if (!uids.length) return out;
  await guard("FETCH", async () => {
    for (const set of uidSets(uids)) for await (const m of client.fetch(set, QUERY, { uid: true })) out.push(toMessage(m));
  });
  return out;
}

/** The production folder. `ignoreCondstore`: list in full every time (tests of the fallback). */
export function mirrorSource(client: ImapFlow, endpoint: string, folder: string, opts: { ignoreCondstore?: boolean } = {}): MirrorSourcePort {
  const guard = guardFor(client, endpoint);
  const condstore = () => !opts.ignoreCondstore && client.capabilities.has("CONDSTORE");
  const qresync = () => !opts.ignoreCondstore && client.capabilities.has("QRESYNC");
  const ensureOpen = async () => { if (client.mailbox && client.mailbox.path === folder) return client.mailbox; return guard("SELECT", () => selectFolder(client, folder, { readOnly: true })); };
  return {
    async changes(since, forceFull): Promise<MirrorSourceChanges> {
      const vanished: number[] = [];
      const onExpunge = (ev: { uid?: number; vanished?: boolean }) => { if (ev.vanished && ev.uid) vanished.push(ev.uid); };
      client.on("expunge", onExpunge);
      try {
        const canResync = !forceFull && since?.highestModseq !== undefined && qresync() && condstore();
        if (client.mailbox) await guard("CLOSE", () => client.mailboxClose());
        const box = await guard("SELECT", () => selectFolder(client, folder, { readOnly: true, ...(canResync ? { uidValidity: BigInt(since!.uidValidity), changedSince: BigInt(since!.highestModseq!) } : {}) }));
        const cursor: MirrorFolderCursor = { uidValidity: Number(box.uidValidity), highestModseq: box.highestModseq?.toString() };
        const uidValidityChanged = since !== undefined && since.uidValidity !== cursor.uidValidity;
        if (forceFull || !since || uidValidityChanged || !canResync || box.highestModseq === undefined) {
          return { cursor, full: true, messages: await listAll(client, guard, box.exists), vanished: [], uidValidityChanged };
        }
        if (box.highestModseq.toString() === since.highestModseq) {
          // Nothing changed since the cursor (RFC 7162 section 3.1.2.1): no FETCH.
          return { cursor, full: false, messages: [], vanished: [...new Set(vanished)], uidValidityChanged: false };
        }
        const messages = await listAll(client, guard, box.exists, BigInt(since.highestModseq!));
        return { cursor, full: false, messages, vanished: [...new Set(vanished)], uidValidityChanged: false };
      } finally {
        client.off("expunge", onExpunge);
      }
    },
    async list(uids) { await ensureOpen(); return listUids(client, guard, uids); },
    async fetchBodies(uids) {
      await ensureOpen();
      const out = new Map<number, { source: Buffer; internalDate?: Date }>();
      if (!uids.length) return out;
      await guard("FETCH BODY[]", async () => {
        for (const set of uidSets(uids)) for await (const m of client.fetch(set, { uid: true, source: true, internalDate: true }, { uid: true })) {
          if (m.source) out.set(m.uid, { source: m.source, internalDate: m.internalDate ? new Date(m.internalDate) : undefined });
        }
      });
      return out;
    },
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** RFC 3501 date-time ("05-Jan-2026 08:00:00 +0000"), in UTC. */
export function imapDateTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** A UID set ("5:7,9") as UIDs in order (RFC 4315 section 3: APPENDUID's set lists them in append order). */
export function expandUidSet(set: string): number[] {
  const out: number[] = [];
  for (const part of set.split(",")) {
    const [a, b] = part.split(":").map(Number);
    if (!Number.isInteger(a)) return [];
    if (b === undefined) out.push(a!);
    else for (let u = a!; a! <= b ? u <= b : u >= b; u += a! <= b ? 1 : -1) out.push(u);
  }
  return out;
}


/**
 * The store's clock against ours (point 4 of issue 21): APPEND a tiny message without a date,
 * so the server stamps INTERNALDATE with its own clock (RFC 3501 section 6.3.11), read it back,
 * and expunge it. Seconds of skew (store minus app) against the middle of the APPEND's round
 * trip; INTERNALDATE has whole seconds, so the answer is good to about a second.
 */
export async function probeClock(client: ImapFlow, endpoint: string): Promise<number> {
  const guard = guardFor(client, endpoint);
  const exists = (await guard("LIST", () => client.list())).some((b) => b.path === PROBE_FOLDER);
  if (!exists) await guard("CREATE", () => client.mailboxCreate(PROBE_FOLDER));
  const before = Date.now();
  const r = await guard("APPEND", () => client.append(PROBE_FOLDER, Buffer.from(`Subject: umconnect clock probe\r\nMessage-ID: <probe-${before}@umconnect.invalid>\r\n\r\nclock probe\r\n`), ["\\Seen"]));
  const after = Date.now();
  if (!r || typeof r !== "object" || !r.uid) throw new ConnectorError("IMAP_COMMAND_FAILED", `clock probe APPEND on ${endpoint} returned no UID`, { endpoint });
  if (client.mailbox) await guard("CLOSE", () => client.mailboxClose());
  await guard("SELECT", () => selectFolder(client, PROBE_FOLDER));
  const m = await guard("FETCH", () => client.fetchOne(String(r.uid), { uid: true, internalDate: true }, { uid: true }));
  await guard("EXPUNGE", () => client.messageDelete(String(r.uid), { uid: true }));
  await guard("CLOSE", () => client.mailboxClose());
  if (!m || !m.internalDate) throw new ConnectorError("IMAP_COMMAND_FAILED", `clock probe on ${endpoint} has no INTERNALDATE`, { endpoint });
  // The store truncated its time to the second: its clock read between that and a second later.
  return Math.round((new Date(m.internalDate).getTime() + 500 - (before + after) / 2) / 1000);
}

/** The backup folder. */
export function mirrorTarget(client: ImapFlow, endpoint: string, folder: string): MirrorTargetPort {
  const guard = guardFor(client, endpoint);
  const ensureOpen = async () => {
    if (client.mailbox && client.mailbox.path === folder) return client.mailbox;
    return guard("SELECT", () => selectFolder(client, folder));
  };
  const find = async (identity: string): Promise<number | undefined> => {
    await ensureOpen();
    const { messageId, size } = parseIdentity(identity);
    // SEARCH HEADER (RFC 3501 section 6.4.4) narrows by Message-ID; without one, by exact size.
    const query = messageId ? { header: { "message-id": messageId } } : size !== undefined ? { larger: size - 1, smaller: size + 1 } : { all: true };
    const uids = await guard("SEARCH", () => client.search(query, { uid: true }));
    if (!uids || !uids.length) return undefined;
    const found = await listUids(client, guard, uids);
    return found.find((m) => m.identity === identity)?.uid;
  };
  return {
    async open() {
      if (client.mailbox) await guard("CLOSE", () => client.mailboxClose());
      let box;
      try {
        box = await guard("SELECT", () => selectFolder(client, folder));
      } catch (e) {
        // A folder the backup does not have yet (a greetings folder, a new mailbox): created once.
        if (!/nonexistent|doesn't exist|not exist|no such/i.test(`${(e as Error).message} ${String(((e as ConnectorError).cause as Error | undefined)?.message ?? "")} ${String(((e as ConnectorError).cause as { responseText?: string } | undefined)?.responseText ?? "")}`)) throw e;
        await guard("CREATE", () => client.mailboxCreate(folder));
        box = await guard("SELECT", () => selectFolder(client, folder));
      }
      return { uidValidity: Number(box.uidValidity), highestModseq: box.highestModseq?.toString() };
    },
    async list() { const box = await ensureOpen(); return listAll(client, guard, box.exists); },
    find,
    async append(source, flags, internalDate, identity) {
      const r = await guard("APPEND", () => client.append(folder, source, flags, internalDate));
      if (r && typeof r === "object" && r.uid) return r.uid;
      // No APPENDUID (no UIDPLUS): the copy is found by its identity.
      const uid = await find(identity);
      if (uid === undefined) throw new ConnectorError("IMAP_COMMAND_FAILED", `APPEND to ${folder} on ${endpoint} was accepted but the copy cannot be found`, { endpoint });
      return uid;
    },
    async appendMany(items) {
      if (items.length < 2 || !client.capabilities.has("MULTIAPPEND")) {
        const out: number[] = [];
        for (const it of items) out.push(await this.append(it.source, it.flags, it.internalDate, it.identity));
        return out;
      }
      // One MULTIAPPEND (src/imap/multiAppend.ts: LITERAL+ where offered).
      const uids = await guard("MULTIAPPEND", () => multiAppend(client, folder, items));
      if (uids) return uids;
      // No usable APPENDUID: each copy is found by its identity.
      const found: number[] = [];
      for (const it of items) {
        const uid = await find(it.identity);
        if (uid === undefined) throw new ConnectorError("IMAP_COMMAND_FAILED", `MULTIAPPEND to ${folder} on ${endpoint} was accepted but a copy cannot be found`, { endpoint });
        found.push(uid);
      }
      return found;
    },
    async setFlags(uid, flags) {
      await ensureOpen();
      const ok = await guard("STORE", () => client.messageFlagsSet(String(uid), flags, { uid: true }));
      if (ok === false) throw new ConnectorError("IMAP_COMMAND_FAILED", `STORE FLAGS on UID ${uid} was refused by ${endpoint}`, { endpoint, imapUid: uid });
    },
    async expunge(uids) {
      if (!uids.length) return;
      await ensureOpen();
      // UID EXPUNGE (RFC 4315) removes only these, never other messages marked \Deleted.
      for (const set of uidSets(uids)) {
        const ok = await guard("EXPUNGE", () => client.messageDelete(set, { uid: true }));
        if (ok === false) throw new ConnectorError("IMAP_COMMAND_FAILED", `UID EXPUNGE ${set} was refused by ${endpoint}`, { endpoint });
      }
    },
  };
}
