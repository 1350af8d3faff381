/**
 * E-mail on the phone, the executor: one run for one linked mailbox (issue 22). The caller
 * holds the link's "mail" lease.
 *
 * Order, as the voicemail sync (DESIGN.md section 3, isync's journal discipline):
 *  1. read the store folder's changes (CONDSTORE/QRESYNC) and each chosen Exchange folder's
 *     delta since the saved cursors (the first delta is limited to the last maxAgeDays);
 *  2. plan (src/sync/mailPlanner.ts, pure);
 *  3. apply: a copy writes its pending row (with its key) BEFORE the APPEND, and a resumed copy
 *     looks for its X-UMC-Key in the store folder before appending again, so a crash at any
 *     point neither duplicates nor loses;
 *  4. save the cursors LAST, once every action they cover is settled.
 */
import { ensureConnectorError, isConnectorError, type ConnectorError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AnnouncedWrites, ImapCursor, VoiceChanges } from "./ports.js";
import { toPhoneMessage, chooseAttachments, type AttachmentRules, type MailAddress, type MailAttachment } from "../formats/emailForPhone.js";
import { planMail, type MailAction, type MailChanges, type MailRecord, type MailRules, type MailSeen } from "./mailPlanner.js";

/** The store folder the copies live in. */
export interface MailStorePort {
  changes(since: ImapCursor | undefined): Promise<VoiceChanges>;
  /** APPEND (RFC 3501 section 6.3.11); the UID from UIDPLUS's APPENDUID (RFC 4315). */
  append(source: Buffer, flags: string[]): Promise<number>;
  /**
   * Several copies in one command (MULTIAPPEND, RFC 3502: all or none are stored), the new UIDs
   * in order; absent, each copy is appended on its own.
   */
  appendMany?(items: Array<{ source: Buffer; flags: string[] }>): Promise<number[]>;
  setSeen(uid: number, seen: boolean): Promise<void>;
  /** UID EXPUNGE of one copy (RFC 4315). */
  remove(uid: number): Promise<unknown>;
  /** Every message's X-UMC-Key, by UID (crash recovery, UIDVALIDITY change). */
  listKeys(): Promise<Map<number, string | undefined>>;
}

export interface MailExchangePort {
  changes(folder: string, deltaLink: string | undefined, receivedSince: Date): Promise<MailChanges>;
  get(id: string): Promise<MailSeen>;
  attachments(id: string): Promise<Array<MailAttachment & { id: string }>>;
  attachmentBytes(id: string, attachmentId: string): Promise<Buffer | undefined>;
  setRead(id: string, isRead: boolean): Promise<void>;
  /** Outlook's Delete (deletes "both"). */
  remove(id: string): Promise<void>;
}

export interface MailCursors {
  imap?: ImapCursor;
  /** Per chosen folder (as the profile names it). */
  deltaLinks: Record<string, string>;
}

export interface MailStatePort {
  loadItems(): Promise<MailRecord[]>;
  putItem(item: MailRecord): Promise<void>;
  /** Several records in few writes (a batch of copies' pending rows, then their final rows). */
  putItems(items: MailRecord[]): Promise<void>;
  deleteItem(syncKey: string): Promise<void>;
  loadCursors(): Promise<MailCursors | undefined>;
  saveCursors(cursors: MailCursors): Promise<void>;
}

export interface MailSyncDeps {
  store: MailStorePort;
  exchange: MailExchangePort;
  state: MailStatePort;
  rules: MailRules;
  /** The mailbox owner, for the copies' To header. */
  owner?: MailAddress;
  log: Logger;
  ids: { tenantId: string; mailboxId: string };
  mode?: "incremental" | "full";
  /** Actions applied at once (Graph allows 4 requests in flight per mailbox). */
  parallel?: number;
  now?: () => number;
  /** True once the run's time is up: the batch at hand is the last and the cursors stay unsaved. */
  timeUp?(): boolean;
  /** Announces the run's writes before it makes them, so their echoes start no run (src/sync/ports.ts AnnouncedWrites). */
  expectEchoes?(writes: AnnouncedWrites): Promise<void>;
}

export interface MailSyncReport {
  actions: Record<MailAction["kind"], number>;
  /** New messages not copied by the profile's filters or loop prevention, by code. */
  notCopied: Record<string, number>;
  /** Copies whose body could not be rendered (sent with the subject and a note). */
  unrenderable: number;
  /** Items skipped for an item problem (left for the next run). */
  skipped: number;
  graphFull: boolean;
  storeFull: boolean;
  deltaExpired: boolean;
  /** Copies left for a follow-up run because this run's time was up. */
  unfinished?: number;
}

/** Copies whose rows are written together (a table transaction holds at most 100 operations). */
const COPY_BATCH = 100;

const emptyActions = (): MailSyncReport["actions"] => ({ copy: 0, recordCapped: 0, setStoreSeen: 0, setGraphRead: 0, recordAgreed: 0, removeFromStore: 0, deleteInExchange: 0, markStoreGone: 0, forget: 0 });

/** Item problems: that message waits for the next run; the others go on. */
const ITEM_ERRORS = new Set(["GRAPH_NOT_FOUND", "GRAPH_REQUEST_FAILED", "PAYLOAD_TOO_LARGE", "MIME_MALFORMED"]);

export async function syncMail(deps: MailSyncDeps): Promise<MailSyncReport> {
  const { store, exchange, state, rules, log } = deps;
  const now = (deps.now ?? Date.now)();
  const saved = (await state.loadCursors()) ?? { deltaLinks: {} };
  // A full run lists the store folder again; Exchange stays on its deltas (no full listings of
  // a heavy mailbox after the first sync; a delta replays nothing it has not reported).
  const cursors: MailCursors = deps.mode === "full" ? { deltaLinks: saved.deltaLinks } : saved;

  // 1a. The store folder.
  const vc = await store.changes(cursors.imap);
  let records = await state.loadItems();
  let present: Set<number> | undefined;
  if (vc.full) present = new Set(vc.changed.map((c) => c.uid));
  if (vc.uidValidityChanged) {
    // Every stored UID is void (RFC 3501 section 2.3.1.1): the copies are found again by their key.
    const keys = await store.listKeys();
    const uidOf = new Map([...keys].filter(([, k]) => k).map(([uid, k]) => [k!, uid]));
    records = records.map((r) => (r.imapUid === undefined ? r : { ...r, imapUid: uidOf.get(r.syncKey) }));
    for (const r of records) await state.putItem(r);
  }

  // 1b. Each chosen Exchange folder; an expired delta token restarts that folder's window.
  const since = new Date(now - rules.filters.maxAgeDays * 86_400_000);
  const upserted: MailSeen[] = [];
  const removed: string[] = [];
  const deltaLinks: Record<string, string> = {};
  let graphFull = false;
  let deltaExpired = false;
  for (const folder of rules.folders) {
    let ec: MailChanges;
    try {
      ec = await exchange.changes(folder, cursors.deltaLinks[folder], since);
    } catch (e) {
      if (!isConnectorError(e, "DELTA_TOKEN_EXPIRED")) throw e;
      deltaExpired = true;
      log.warn("mail.delta.expired", { ...deps.ids, folder });
      ec = await exchange.changes(folder, undefined, since);
    }
    graphFull ||= ec.full;
    upserted.push(...ec.upserted);
    removed.push(...ec.removed);
    deltaLinks[folder] = ec.deltaLink;
  }

  // 2. Plan.
  const plan = planMail({ records, graph: { upserted, removed }, store: { full: vc.full || vc.uidValidityChanged, changed: vc.changed, vanished: vc.vanished }, present, rules, now });
  const report: MailSyncReport = { actions: emptyActions(), notCopied: {}, unrenderable: 0, skipped: 0, graphFull, storeFull: vc.full, deltaExpired };
  for (const n of plan.notCopied) report.notCopied[n.code] = (report.notCopied[n.code] ?? 0) + 1;

  const echoes = mailEchoes(plan.actions);
  if (echoes && deps.expectEchoes) {
    await deps.expectEchoes(echoes).catch((e: unknown) => log.warn("mail.echo.unrecorded", { ...deps.ids, error: ensureConnectorError(e) }));
  }

  // 3. Apply, a few at once (the Graph client caps requests in flight per mailbox).
  const byKey = new Map(records.map((r) => [r.syncKey, r]));
  const byId = new Map(upserted.map((m) => [m.id, m]));
  let keysInStore: Promise<Map<string, number>> | undefined;
  const ctx: ApplyContext = {
    deps, byKey, byId,
    findInStore: (key) => (keysInStore ??= store.listKeys().then((m) => new Map([...m].filter(([, k]) => k).map(([uid, k]) => [k!, uid])))).then((m) => m.get(key)),
    report,
  };
  let fatal: ConnectorError | undefined;
  const failed = (a: MailAction, e: unknown) => {
    const err = ensureConnectorError(e, "INTERNAL", { ...deps.ids, syncKey: a.syncKey });
    if (err.transient || !ITEM_ERRORS.has(err.code)) { fatal ??= err; return; }
    report.skipped++;
    log.warn("mail.item.skipped", { ...deps.ids, syncKey: a.syncKey, action: a.kind, code: err.code });
  };
  // `fn` returns false for an action it has not finished yet (a copy still to be appended).
  const pool = async <A extends MailAction>(list: A[], fn: (a: A) => Promise<void | boolean>) => {
    const queue = [...list];
    const worker = async () => {
      for (let a = queue.shift(); a && !fatal; a = queue.shift()) {
        try { if ((await fn(a)) !== false) report.actions[a.kind]++; } catch (e) { failed(a, e); }
      }
    };
    await Promise.all(Array.from({ length: Math.min(deps.parallel ?? 4, queue.length) }, worker));
  };
  await pool(plan.actions.filter((a) => a.kind !== "copy"), (a) => apply(a, ctx));
  // Copies in batches: a batch's pending rows in one write before any of its APPENDs (a crash
  // leaves pending rows, resolved by key), then the copies made (a few at once: the attachment
  // listings are Graph requests), then APPENDed a chunk per command (MULTIAPPEND), then their
  // rows in one write. One APPEND per message was the run's bottleneck: the store connection
  // runs one command at a time, so a run waited out a round trip per copy. The writes overlap
  // the neighbouring batches' APPENDs (different rows of the partition).
  const copies = plan.actions.filter((a): a is MailAction & { kind: "copy" } => a.kind === "copy");
  const batches: Array<typeof copies> = [];
  for (let i = 0; i < copies.length; i += COPY_BATCH) batches.push(copies.slice(i, i + COPY_BATCH));
  const writePending = async (batch: typeof copies) => {
    const pending = batch.filter((a) => !a.resume).map((a): MailRecord => ({ syncKey: a.syncKey, graphId: a.graphId, agreedSeen: a.seen, pendingAppend: true, receivedAt: a.receivedAt }));
    if (!pending.length) return;
    await state.putItems(pending);
    for (const r of pending) if (!byKey.get(r.syncKey)?.imapUid) byKey.set(r.syncKey, r);
  };
  // Settled promises only: a failed write is seen where it is awaited, never unhandled.
  const settle = (p: Promise<void>) => p.then(() => undefined, (e: unknown) => e);
  const finals: Array<Promise<unknown>> = [];
  let pendingNext = batches.length ? settle(writePending(batches[0]!)) : undefined;
  // Once the run's time is up the batch at hand is the last (every run copies at least one);
  // the rest is a follow-up run's, planned again from the same delta (cursors unsaved).
  let stopAt = batches.length;
  for (let i = 0; i < stopAt && !fatal; i++) {
    const err = await pendingNext;
    if (err) { fatal ??= ensureConnectorError(err, "STATE_UNAVAILABLE", deps.ids); break; }
    if (i + 1 < stopAt && deps.timeUp?.()) stopAt = i + 1;
    pendingNext = i + 1 < stopAt ? settle(writePending(batches[i + 1]!)) : undefined;
    const done: MailRecord[] = [];
    const made: MadeCopy[] = [];
    await pool(batches[i]!, async (a) => {
      const r = await makeCopy(a, ctx);
      if (r && "record" in r) done.push(r.record);
      else if (r) { made.push(r); return false; }
    });
    for (const chunk of appendChunks(made)) {
      if (fatal) break;
      await appendChunk(chunk, ctx, (m, uid) => { done.push(copied(m.action, uid)); report.actions.copy++; }, failed);
    }
    if (done.length) finals.push(settle(state.putItems(done).then(() => { for (const r of done) byKey.set(r.syncKey, r); })));
  }
  for (const e of await Promise.all([...finals, pendingNext])) if (e) fatal ??= ensureConnectorError(e, "STATE_UNAVAILABLE", deps.ids);
  if (fatal) throw fatal;
  if (stopAt < batches.length) {
    const unfinished = batches.slice(stopAt).reduce((n, b) => n + b.length, 0);
    log.info("mail.sync.paused", { ...deps.ids, unfinished });
    return { ...report, unfinished };
  }

  // 4. Cursors last. A skipped item keeps the Exchange cursors back only when it was a copy: the
  // next run must see that message again.
  const copyFailed = report.skipped > 0 && plan.actions.some((a) => a.kind === "copy" && !byKey.get(a.syncKey)?.imapUid);
  await state.saveCursors({ imap: vc.cursor, deltaLinks: copyFailed ? cursors.deltaLinks : deltaLinks });
  return report;
}

interface ApplyContext {
  deps: MailSyncDeps;
  byKey: Map<string, MailRecord>;
  byId: Map<string, MailSeen>;
  findInStore(key: string): Promise<number | undefined>;
  report: MailSyncReport;
}

async function apply(a: MailAction, ctx: ApplyContext): Promise<void> {
  const { store, exchange, state } = ctx.deps;
  const put = async (r: MailRecord) => { ctx.byKey.set(r.syncKey, r); await state.putItem(r); };
  const forget = async (key: string) => { ctx.byKey.delete(key); await state.deleteItem(key); };
  const rec = () => ctx.byKey.get(a.syncKey)!;
  switch (a.kind) {
    case "copy":
      throw new Error("copies are applied in batches (copyOne)");
    case "recordCapped":
      await put({ syncKey: a.syncKey, graphId: a.graphId, agreedSeen: a.seen, receivedAt: a.receivedAt, gone: "capped" });
      return;
    case "setStoreSeen":
      await store.setSeen(a.uid, a.seen);
      await put({ ...rec(), agreedSeen: a.seen });
      return;
    case "setGraphRead":
      await exchange.setRead(a.graphId, a.read);
      if (a.setStoreSeen !== undefined) await store.setSeen(a.setStoreSeen, a.read);
      await put({ ...rec(), agreedSeen: a.read });
      return;
    case "recordAgreed":
      await put({ ...rec(), agreedSeen: a.seen });
      return;
    case "removeFromStore":
      await store.remove(a.uid);
      // Over the cap: remembered, so the message is not copied again; an Outlook delete is forgotten next.
      if (a.reason === "cap") await put({ ...rec(), imapUid: undefined, gone: "capped" });
      else await forget(a.syncKey);
      return;
    case "deleteInExchange":
      try { await exchange.remove(a.graphId); } catch (e) { if (!isConnectorError(e, "GRAPH_NOT_FOUND")) throw e; }
      await forget(a.syncKey);
      return;
    case "markStoreGone":
      await put({ ...rec(), imapUid: undefined, gone: "store" });
      return;
    case "forget":
      await forget(a.syncKey);
      return;
  }
}

/** A copy made and waiting for its APPEND. */
interface MadeCopy { action: MailAction & { kind: "copy" }; source: Buffer; flags: string[] }

/** Most copies and bytes in one MULTIAPPEND: one round trip for many, a command that stays short. */
export const APPEND_CHUNK_MESSAGES = 50;
export const APPEND_CHUNK_BYTES = 4 * 1024 * 1024;

const copied = (a: MailAction & { kind: "copy" }, imapUid: number): MailRecord => ({ syncKey: a.syncKey, graphId: a.graphId, imapUid, agreedSeen: a.seen, receivedAt: a.receivedAt });

/**
 * One copy (its pending row is written): resumed by key when a crash may have appended it
 * (its record), else converted (the message to APPEND); undefined when there is nothing to copy.
 */
async function makeCopy(a: MailAction & { kind: "copy" }, ctx: ApplyContext): Promise<{ record: MailRecord } | MadeCopy | undefined> {
  const { exchange, state } = ctx.deps;
  if (a.resume) {
    const uid = await ctx.findInStore(a.syncKey);
    if (uid !== undefined) return { record: copied(a, uid) };
  }
  let mail = ctx.byId.get(a.graphId);
  if (!mail) {
    try { mail = await exchange.get(a.graphId); } catch (e) {
      // A resumed copy of a message deleted meanwhile: nothing left to copy.
      if (isConnectorError(e, "GRAPH_NOT_FOUND")) { ctx.byKey.delete(a.syncKey); await state.deleteItem(a.syncKey); return undefined; }
      throw e;
    }
  }
  const copy = toPhoneMessage(mail, { key: a.syncKey, to: ctx.deps.owner, attachments: mail.hasAttachments ? await attachmentsFor(ctx.deps, mail.id) : [], rules: ctx.deps.rules.attachments });
  if (copy.unrenderable) {
    ctx.report.unrenderable++;
    ctx.deps.log.warn("mail.body.unrenderable", { ...ctx.deps.ids, syncKey: a.syncKey, reason: copy.unrenderable });
  }
  return { action: a, source: copy.source, flags: a.seen ? ["\\Seen"] : [] };
}

/** The made copies in chunks of at most APPEND_CHUNK_MESSAGES and APPEND_CHUNK_BYTES (a larger copy goes alone). */
export function appendChunks<T extends { source: Buffer }>(made: readonly T[]): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const m of made) {
    if (chunk.length && (chunk.length >= APPEND_CHUNK_MESSAGES || bytes + m.source.length > APPEND_CHUNK_BYTES)) { chunks.push(chunk); chunk = []; bytes = 0; }
    chunk.push(m);
    bytes += m.source.length;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

/**
 * APPENDs a chunk of copies in one command where the store takes it. A refused MULTIAPPEND
 * stored none of them (RFC 3502 section 2): each is then appended on its own, so one message
 * the store refuses does not hold back the others.
 */
async function appendChunk(chunk: MadeCopy[], ctx: ApplyContext, ok: (m: MadeCopy, uid: number) => void, failed: (a: MailAction, e: unknown) => void): Promise<void> {
  const { store } = ctx.deps;
  if (chunk.length > 1 && store.appendMany) {
    try {
      const uids = await store.appendMany(chunk.map((m) => ({ source: m.source, flags: m.flags })));
      chunk.forEach((m, i) => ok(m, uids[i]!));
      return;
    } catch (e) {
      // Anything but the store's NO (a lost connection, a deadline) may have stored the chunk:
      // the run stops, and the next one resolves the pending rows by their keys.
      if (!isConnectorError(e, "IMAP_COMMAND_FAILED")) { failed(chunk[0]!.action, e); return; }
    }
  }
  for (const m of chunk) {
    try { ok(m, await store.append(m.source, m.flags)); } catch (e) { failed(m.action, e); }
  }
}

/** The message's attachments; the content only of those the copy keeps (mode "limit"). */
async function attachmentsFor(deps: MailSyncDeps, id: string): Promise<MailAttachment[]> {
  const list = await deps.exchange.attachments(id);
  const rules: AttachmentRules = deps.rules.attachments;
  const keep = new Set(chooseAttachments(list, rules).keep);
  return Promise.all(list.map(async (a) => (keep.has(a) ? { ...a, bytes: await deps.exchange.attachmentBytes(id, a.id) } : a)));
}

/**
 * The plan's writes as the store's push and Graph's notifications report them: \Seen set or
 * cleared on a copy is "flags", a copy removed "flags" and "expunge"; an Exchange message marked
 * read or unread is "updated", deleted "deleted". The copies' APPENDs are left out: a message
 * added to the copies' folder starts no e-mail run (src/app/storeChanges.ts).
 */
function mailEchoes(actions: MailAction[]): AnnouncedWrites | undefined {
  const out: AnnouncedWrites = { store: [], graph: [] };
  for (const a of actions) {
    if (a.kind === "setStoreSeen") out.store.push({ uid: a.uid, kind: "flags" });
    else if (a.kind === "removeFromStore") out.store.push({ uid: a.uid, kind: "flags" }, { uid: a.uid, kind: "expunge" });
    else if (a.kind === "deleteInExchange") out.graph.push({ id: a.graphId, change: "deleted" });
    else if (a.kind === "setGraphRead") {
      out.graph.push({ id: a.graphId, change: "updated" });
      if (a.setStoreSeen !== undefined) out.store.push({ uid: a.setStoreSeen, kind: "flags" });
    }
  }
  return out.store.length || out.graph.length ? out : undefined;
}
