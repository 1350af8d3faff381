/**
 * One voice mailbox folder as the sync core sees it (VoiceMailboxPort), on one IMAP
 * connection for the duration of a sync run.
 *
 * Change detection (RFC 7162): with CONDSTORE an unchanged HIGHESTMODSEQ means nothing changed
 * (no FETCH at all); otherwise FETCH ... (CHANGEDSINCE) returns changed flags and a QRESYNC
 * SELECT reports expunged UIDs as VANISHED (EARLIER). Without CONDSTORE/QRESYNC, or after a
 * UIDVALIDITY change (RFC 3501 section 2.3.1.1), the whole folder is listed (UID + FLAGS) and
 * the caller diffs it against its state.
 */
import type { ImapFlow } from "imapflow";
import { ConnectorError } from "../errors.js";
import type { ImapCursor, StoreTrashed, VoiceChanges, VoiceMailboxPort } from "../sync/ports.js";
import { voiceSyncKey } from "../sync/syncKey.js";
import { connectMailbox, selectFolder, toImapError, type ImapEndpoint } from "./endpoint.js";
import { IMAP_COMMAND_DEADLINE_MS, withDeadline } from "../timeouts.js";
import { canMultiAppend, multiAppend, type AppendItem } from "./multiAppend.js";

/**
 * A compact UID set ("1:5,8,10:12"), in chunks that keep each command line short (servers cap
 * line length, Dovecot at 64 KiB by default: imap_max_line_length).
 */
export function uidSets(uids: number[], maxLength = 8000): string[] {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const sets: string[] = [];
  let parts: string[] = [];
  let length = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    const part = i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`;
    if (length + part.length + 1 > maxLength && parts.length) { sets.push(parts.join(",")); parts = []; length = 0; }
    parts.push(part);
    length += part.length + 1;
    i = j + 1;
  }
  if (parts.length) sets.push(parts.join(","));
  return sets;
}

/** Partial-fetch window for message bodies: few round trips, bounded memory per step. */
const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

export interface VoiceMailboxOptions {
  folder: string;
  /** Where an Exchange-side delete sends the message: expunge, or a trash folder. */
  removal: { mode: "expunge" } | { mode: "trash"; folder: string };
  maxMessageBytes?: number;
  /** Ignore the server's CONDSTORE/QRESYNC (tests of the fallback path). */
  ignoreCondstore?: boolean;
  /** Create the folder when it does not exist (the calendar and contacts folders). */
  createFolder?: boolean;
  /** An IDLE watch: held for minutes, so it does not take one of the sync runs' connections
   *  (src/imap/endpoint.ts `connectMailbox`). */
  watch?: boolean;
}

export interface StoredItem {
  uid: number;
  source: Buffer;
  internalDate?: Date;
}

export interface VoiceMailboxSession extends VoiceMailboxPort {
  close(): Promise<void>;
  client: ImapFlow;
  /** APPEND (RFC 3501 section 6.3.11) to the folder; the new UID comes from UIDPLUS's APPENDUID (RFC 4315). */
  append(source: Buffer, flags?: string[]): Promise<number>;
  /**
   * Several APPENDs in one command where the server offers MULTIAPPEND (RFC 3502: all or none
   * are stored), else one after the other; the new UIDs in order (UIDPLUS's APPENDUID).
   */
  appendMany(items: AppendItem[]): Promise<number[]>;
  /** Removes several messages as `remove` does: one UID EXPUNGE (expunge mode) or UID MOVE (trash mode) per UID set. */
  removeMany(uids: number[]): Promise<void>;
  /** Full sources of several messages (small items: contacts, calendar entries). */
  fetchSources(uids: number[]): Promise<StoredItem[]>;
  /** Every message's X-UMC-Key header (the connector's own items), by UID. */
  listKeys(): Promise<Map<number, string | undefined>>;
  /** SETMETADATA on INBOX (RFC 5464); `null` removes the entry. */
  setMetadata(entry: string, value: string | null): Promise<void>;
  getMetadata(entry: string): Promise<string | null>;
  /**
   * STATUS of a folder (RFC 3501 section 6.3.10), without selecting it: UIDVALIDITY, UIDNEXT and,
   * where the server offers CONDSTORE, HIGHESTMODSEQ (RFC 7162 section 3.1.4.1: it changes with
   * every flag change, append and expunge). Undefined when the folder does not exist.
   */
  folderStatus(folder: string): Promise<ImapCursor | undefined>;
}

export async function openVoiceMailbox(endpoint: ImapEndpoint, voiceMailbox: string, options: VoiceMailboxOptions): Promise<VoiceMailboxSession> {
  const { client, release } = await connectMailbox(endpoint, voiceMailbox, options.watch ? "watch" : "sync");
  const ep = endpoint.id;
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await withDeadline(fn(), IMAP_COMMAND_DEADLINE_MS, "IMAP_UNAVAILABLE", `IMAP ${what} on ${ep}`, { endpoint: ep });
    } catch (e) {
      // A command that hangs leaves the connection in an unknown state: drop it.
      if (e instanceof ConnectorError && e.code === "IMAP_UNAVAILABLE" && /did not finish/.test(e.message)) client.close();
      throw toImapError(e, ep, what);
    }
  };
  const maxBytes = options.maxMessageBytes ?? 50 * 1024 * 1024;
  const condstore = () => !options.ignoreCondstore && client.capabilities.has("CONDSTORE");
  const qresync = () => !options.ignoreCondstore && client.capabilities.has("QRESYNC");
  const falseIsError = (ok: boolean | object, what: string) => { if (ok === false) throw new ConnectorError("IMAP_COMMAND_FAILED", `${what} was refused by ${ep}`, { endpoint: ep }); };
  // Envelopes already fetched for sync keys answer identities() too: a first sync with adoption
  // reads each message's envelope once. A UID names the same message for as long as the
  // folder's UIDVALIDITY holds (RFC 3501 section 2.3.1.1), so they are kept under it.
  let envelopes: { uidValidity?: bigint; byUid: Map<number, Identity> } = { byUid: new Map() };
  const identitiesOf = (uidValidity: bigint | undefined) => {
    if (envelopes.uidValidity !== uidValidity) envelopes = { uidValidity, byUid: new Map() };
    return envelopes.byUid;
  };
  const ensureOpen = () => guard("SELECT", async () => {
    if (client.mailbox && client.mailbox.path === options.folder) return client.mailbox;
    return selectFolder(client, options.folder);
  });

  if (options.createFolder) {
    try {
      await guard("CREATE", () => client.mailboxCreate(options.folder));
    } catch (e) {
      // RFC 5530 ALREADYEXISTS (or an older server's plain NO for an existing folder).
      if (!/exist/i.test(String((e as Error).message) + String((e as ConnectorError).cause ? ((e as ConnectorError).cause as Error).message : ""))) { await release(); throw e; }
    }
  }

  const append = async (source: Buffer, flags: string[] = ["\\Seen"]): Promise<number> => {
    const r = await guard("APPEND", () => client.append(options.folder, source, flags));
    if (!r || typeof r !== "object" || !r.uid) throw new ConnectorError("IMAP_COMMAND_FAILED", `APPEND to ${options.folder} on ${ep} returned no UID (UIDPLUS missing)`, { endpoint: ep });
    return r.uid;
  };

  return {
    client,
    close: release,
    append,

    async appendMany(items: AppendItem[]): Promise<number[]> {
      if (items.length < 2 || !canMultiAppend(client)) {
        const out: number[] = [];
        for (const it of items) out.push(await append(it.source, it.flags));
        return out;
      }
      const uids = await guard("MULTIAPPEND", () => multiAppend(client, options.folder, items));
      if (!uids) throw new ConnectorError("IMAP_COMMAND_FAILED", `MULTIAPPEND to ${options.folder} on ${ep} returned no UIDs (UIDPLUS missing)`, { endpoint: ep });
      return uids;
    },

    async fetchSources(uids: number[]): Promise<StoredItem[]> {
      await ensureOpen();
      const out: StoredItem[] = [];
      if (!uids.length) return out;
      // Sizes first: bodies over the limit are never fetched (see fetchSource).
      const small: number[] = [];
      await guard("FETCH RFC822.SIZE", async () => {
        for (const set of uidSets(uids)) for await (const m of client.fetch(set, { uid: true, size: true }, { uid: true })) if ((m.size ?? 0) <= maxBytes) small.push(m.uid);
      });
      if (!small.length) return out;
      await guard("FETCH BODY[]", async () => {
        for (const set of uidSets(small)) for await (const m of client.fetch(set, { uid: true, size: true, source: true, internalDate: true }, { uid: true })) {
          if ((m.size ?? 0) > maxBytes || !m.source) continue;
          out.push({ uid: m.uid, source: m.source, internalDate: m.internalDate ? new Date(m.internalDate) : undefined });
        }
      });
      return out;
    },

    async listKeys(): Promise<Map<number, string | undefined>> {
      const box = await ensureOpen();
      const out = new Map<number, string | undefined>();
      if (!box.exists) return out;
      await guard("FETCH HEADER.FIELDS", async () => {
        for await (const m of client.fetch("1:*", { uid: true, headers: ["x-umc-key"] })) {
          const key = m.headers?.toString("utf8").match(/^x-umc-key:\s*(\S+)/im)?.[1];
          out.set(m.uid, key);
        }
      });
      return out;
    },

    async setMetadata(entry: string, value: string | null): Promise<void> {
      // imapflow has no METADATA command; exec sends it with the library's own encoder.
      const exec = (client as unknown as { exec(cmd: string, attrs: unknown[]): Promise<unknown> }).exec.bind(client);
      await guard("SETMETADATA", () => exec("SETMETADATA", [{ type: "STRING", value: "INBOX" }, [{ type: "ATOM", value: entry }, value === null ? null : { type: "STRING", value }]]));
    },

    async getMetadata(entry: string): Promise<string | null> {
      const exec = (client as unknown as { exec(cmd: string, attrs: unknown[], opts: unknown): Promise<unknown> }).exec.bind(client);
      let found: string | null = null;
      await guard("GETMETADATA", () => exec("GETMETADATA", [{ type: "STRING", value: "INBOX" }, { type: "ATOM", value: entry }], {
        untagged: {
          METADATA: async (untagged: { attributes?: Array<unknown> }) => {
            const list = untagged.attributes?.[1];
            if (Array.isArray(list)) for (let i = 0; i + 1 < list.length; i += 2) {
              const k = (list[i] as { value?: string }).value;
              const v = list[i + 1] as { value?: string | Buffer } | null;
              if (k?.toLowerCase() === entry.toLowerCase()) found = v?.value === undefined ? null : String(v.value);
            }
          },
        },
      }));
      return found;
    },

    async folderStatus(folder: string): Promise<ImapCursor | undefined> {
      try {
        const st = await guard("STATUS", () => client.status(folder, { uidValidity: true, uidNext: true, ...(condstore() ? { highestModseq: true } : {}) }));
        if (!st || st.uidValidity === undefined) throw new ConnectorError("IMAP_COMMAND_FAILED", `STATUS of ${folder} was refused by ${ep}`, { endpoint: ep });
        return { uidValidity: Number(st.uidValidity), highestModseq: st.highestModseq?.toString(), uidNext: st.uidNext };
      } catch (e) {
        // imapflow answers a NO for a folder that LIST does not show with an error of code
        // "NotFound" (its commands/status.js); the guard keeps it as the cause.
        const cause = e instanceof ConnectorError ? e.cause : e;
        if ((cause as { code?: string } | undefined)?.code === "NotFound") return undefined;
        throw e;
      }
    },

    async changes(since: ImapCursor | undefined): Promise<VoiceChanges> {
      const vanished: number[] = [];
      const onExpunge = (ev: { uid?: number; vanished?: boolean }) => { if (ev.vanished && ev.uid) vanished.push(ev.uid); };
      client.on("expunge", onExpunge);
      try {
        const canResync = since?.highestModseq !== undefined && qresync() && condstore();
        const box = await guard("SELECT", () => (client.mailbox && client.mailbox.path === options.folder ? client.mailboxClose().then(() => undefined) : Promise.resolve(undefined))
          .then(() => selectFolder(client, options.folder, canResync ? { uidValidity: BigInt(since!.uidValidity), changedSince: BigInt(since!.highestModseq!) } : {})));
        const cursor: ImapCursor = { uidValidity: Number(box.uidValidity), highestModseq: box.highestModseq?.toString(), uidNext: box.uidNext };
        const uidValidityChanged = since !== undefined && since.uidValidity !== cursor.uidValidity;
        const list = async (changedSince?: bigint) => {
          const out: Array<{ uid: number; seen: boolean }> = [];
          if (box.exists === 0) return out;
          for await (const m of client.fetch("1:*", { uid: true, flags: true }, changedSince === undefined ? {} : { changedSince })) out.push({ uid: m.uid, seen: m.flags?.has("\\Seen") ?? false });
          return out;
        };
        if (!since || uidValidityChanged || !condstore() || since.highestModseq === undefined || box.highestModseq === undefined) {
          return { cursor, full: true, changed: await guard("FETCH", () => list()), vanished: [], uidValidityChanged };
        }
        if (box.highestModseq.toString() === since.highestModseq) {
          // Nothing changed since the cursor: no FETCH needed (RFC 7162 section 3.1.2.1).
          return { cursor, full: false, changed: [], vanished: [...new Set(vanished)], uidValidityChanged: false };
        }
        if (!qresync()) {
          // CONDSTORE without QRESYNC cannot report expunges: list everything instead.
          return { cursor, full: true, changed: await guard("FETCH", () => list()), vanished: [], uidValidityChanged: false };
        }
        const changed = await guard("FETCH CHANGEDSINCE", () => list(BigInt(since.highestModseq!)));
        return { cursor, full: false, changed, vanished: [...new Set(vanished)], uidValidityChanged: false };
      } finally {
        client.off("expunge", onExpunge);
      }
    },

    async syncKeys(uids: number[]): Promise<Map<number, string>> {
      const box = await ensureOpen();
      const out = new Map<number, string>();
      if (!uids.length) return out;
      const known = identitiesOf(box.uidValidity);
      await guard("FETCH headers", async () => {
        for (const set of uidSets(uids)) for await (const m of client.fetch(set, { uid: true, envelope: true, size: true, internalDate: true }, { uid: true })) {
          const env = m.envelope;
          known.set(m.uid, identity(m));
          out.set(m.uid, voiceSyncKey({
            messageId: env?.messageId,
            date: env?.date ? new Date(env.date).toISOString() : undefined,
            from: env?.from?.[0]?.address,
            subject: env?.subject,
            size: m.size,
            internalDate: m.internalDate ? new Date(m.internalDate).toISOString() : undefined,
          }));
        }
      });
      return out;
    },

    async identities(uids: number[]): Promise<Map<number, Identity>> {
      const box = await ensureOpen();
      const known = identitiesOf(box.uidValidity);
      const out = new Map<number, Identity>();
      const missing: number[] = [];
      for (const uid of uids) { const k = known.get(uid); if (k) out.set(uid, k); else missing.push(uid); }
      if (!missing.length) return out;
      await guard("FETCH ENVELOPE", async () => {
        for (const set of uidSets(missing)) for await (const m of client.fetch(set, { uid: true, envelope: true, internalDate: true }, { uid: true })) out.set(m.uid, identity(m));
      });
      return out;
    },

    async fetchSource(uid: number): Promise<Buffer> {
      await ensureOpen();
      // RFC822.SIZE first (RFC 3501 section 6.4.5): an item over the limit is refused before
      // any of its body crosses the wire, so a mailbox owner cannot make the worker load a
      // multi-GB item again and again. The caller records it as skipped (too large).
      const head = await guard("FETCH RFC822.SIZE", () => client.fetchOne(String(uid), { uid: true, size: true }, { uid: true }));
      if (head === false) throw new ConnectorError("IMAP_COMMAND_FAILED", `message UID ${uid} is not on ${ep} any more`, { endpoint: ep, imapUid: uid });
      const tooLarge = (size: number | string) => new ConnectorError("PAYLOAD_TOO_LARGE", `too large: message UID ${uid} has ${size} bytes, the limit is ${maxBytes}`, { endpoint: ep, imapUid: uid, transient: false });
      if ((head.size ?? 0) > maxBytes) throw tooLarge(head.size!);
      // Then the body in partial fetches (RFC 3501 section 6.4.5, BODY.PEEK[]<start.length>),
      // counted as it arrives and stopped one byte past the limit: a size that was wrong or
      // grew meanwhile cannot pull more than that.
      return guard("FETCH BODY[]", async () => {
        const d = await client.download(String(uid), undefined, { uid: true, maxBytes: maxBytes + 1, chunkSize: DOWNLOAD_CHUNK_BYTES });
        if (!d?.content) throw new ConnectorError("IMAP_COMMAND_FAILED", `message UID ${uid} is not on ${ep} any more`, { endpoint: ep, imapUid: uid });
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of d.content as AsyncIterable<Buffer>) {
          size += c.length;
          if (size > maxBytes) { d.content.destroy(); throw tooLarge(`more than ${maxBytes}`); }
          chunks.push(c);
        }
        return Buffer.concat(chunks);
      });
    },

    async setSeen(uid: number, seen: boolean): Promise<void> {
      await ensureOpen();
      const ok = await guard("STORE", () => (seen ? client.messageFlagsAdd(String(uid), ["\\Seen"], { uid: true }) : client.messageFlagsRemove(String(uid), ["\\Seen"], { uid: true })));
      falseIsError(ok, `STORE \\Seen on UID ${uid}`);
    },

    async remove(uid: number): Promise<StoreTrashed | void> {
      await ensureOpen();
      if (options.removal.mode === "trash") {
        const trash = options.removal.folder;
        const r = await guard("MOVE", () => client.messageMove(String(uid), trash, { uid: true }));
        falseIsError(r, `MOVE of UID ${uid} to ${trash}`);
        // COPYUID (RFC 4315 section 3, sent with MOVE per RFC 6851 section 4.3): where it went.
        const moved = r ? r.uidMap?.get(uid) : undefined;
        return moved ? { folder: trash, uid: moved, uidValidity: r && r.uidValidity !== undefined ? Number(r.uidValidity) : undefined } : undefined;
      }
      // UID EXPUNGE (RFC 4315) removes only this message, never others marked \Deleted.
      const ok = await guard("EXPUNGE", () => client.messageDelete(String(uid), { uid: true }));
      falseIsError(ok, `EXPUNGE of UID ${uid}`);
    },

    async removeMany(uids: number[]): Promise<void> {
      await ensureOpen();
      const removal = options.removal;
      // UID MOVE (RFC 6851) or UID EXPUNGE (RFC 4315 section 2.1) of just these UIDs; a UID no
      // longer there is no error.
      for (const set of uidSets(uids)) {
        const ok = removal.mode === "trash"
          ? await guard("MOVE", () => client.messageMove(set, removal.folder, { uid: true }))
          : await guard("EXPUNGE", () => client.messageDelete(set, { uid: true }));
        falseIsError(ok, `${removal.mode === "trash" ? "MOVE" : "EXPUNGE"} of UIDs ${set}`);
      }
    },

    async restore(from: StoreTrashed): Promise<number | undefined> {
      const box = await guard("SELECT", () => selectFolder(client, from.folder));
      if (from.uidValidity !== undefined && Number(box.uidValidity) !== from.uidValidity) return undefined;
      const r = await guard("MOVE", () => client.messageMove(String(from.uid), options.folder, { uid: true }));
      falseIsError(r, `MOVE of UID ${from.uid} from ${from.folder} back to ${options.folder}`);
      // No COPYUID: the UID is not in the trash any more (a UID MOVE of a missing UID moves nothing).
      return r ? r.uidMap?.get(from.uid) : undefined;
    },
  };
}

type Identity = { messageId?: string; date?: Date };

/** Message-ID and Date (the envelope's, else INTERNALDATE) of a fetched message. */
function identity(m: { envelope?: { messageId?: string; date?: Date | string }; internalDate?: Date | string }): Identity {
  const date = m.envelope?.date ? new Date(m.envelope.date) : m.internalDate ? new Date(m.internalDate) : undefined;
  return { messageId: m.envelope?.messageId, date: date && Number.isFinite(date.getTime()) ? date : undefined };
}
