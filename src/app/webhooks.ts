/**
 * HTTP webhook handling, independent of the Functions types so it can be tested directly:
 * authenticate, turn into sync requests, enqueue, answer fast (within 3 s, always).
 */
import type { HttpResponseInit } from "@azure/functions";
import { isConnectorError } from "../errors.js";
import { parseNotifications, validationToken, type NotificationWork } from "../webhooks/graphNotifications.js";
import { verifyStoreNotification, type StoreEvent } from "../webhooks/storeNotifications.js";
import type { Deps } from "./deps.js";
import { enqueueSync, type SyncRequest } from "./syncQueue.js";
import { runsForFolderChange, type StoreChangeKind } from "./storeChanges.js";
import { QUEUED_MARK_SECONDS, requestChangeRun, runKeyOf } from "./linkRun.js";
import { kindOfResource } from "./subscriptions.js";
import { nonceTime } from "../webhooks/clientState.js";
import { withDeadline } from "../timeouts.js";
import { Semaphore } from "../semaphore.js";
import type { EchoKind, GraphEcho, StoreEcho, SubscriptionRecord } from "../state/stateStore.js";

/** Graph expects an answer within 3 s (change-notifications-delivery-webhooks: slow endpoints
 *  are throttled, then dropped): every storage call in the request path has a deadline, and
 *  the whole answer is given within this budget. */
export const WEBHOOK_BUDGET_MS = 2_500;
/** Looking up the subscription records of a batch (in parallel). */
const LOOKUP_MS = 900;
/** The "already queued" mark is an optimisation: when storage is slow, skip it and enqueue. */
const MARK_MS = 500;
/** A notification that arrives before its subscription's record is written (the create is in
 *  flight) is accepted when its nonce is this fresh. */
const FRESH_NONCE_MS = 10 * 60_000;

function errorResponse(e: unknown, deps?: Deps, what?: string): HttpResponseInit {
  if (isConnectorError(e) && e.httpStatus < 500) {
    // The caller learns the code only; the log says why (never the body or the signature).
    if (deps && what) deps.log.warn(`${what}.refused`, { code: e.code, reason: e.message, endpoint: e.ids.endpoint });
    return { status: e.httpStatus, jsonBody: { error: e.code } };
  }
  throw e;
}

/** Not durable in time: Graph retries on 5xx; Retry-After says when. */
const unavailable = (): HttpResponseInit => ({ status: 503, headers: { "retry-after": "10" }, jsonBody: { error: "STATE_UNAVAILABLE" } });

/**
 * Subscription id, link, kind, tenant and nonce together: a genuine clientState of link A
 * sent with link B's subscription id (or another tenant's id, or after A's old subscription
 * is gone) is refused.
 */
function genuine(w: NotificationWork, rec: SubscriptionRecord | undefined, now: number): boolean {
  if (!rec) {
    // No record (yet): only a change notification of a subscription being created right now.
    const made = w.nonce ? nonceTime(w.nonce) : undefined;
    return w.reason === "graph-change" && made !== undefined && now - made < FRESH_NONCE_MS && made <= now + 60_000;
  }
  return rec.linkId === w.linkId && kindOfResource(rec.resource) === w.kind && rec.tenantId === w.tenantId && (rec.nonce ?? undefined) === w.nonce;
}

export async function handleGraphNotification(deps: Deps, url: URL, body: string, kind: "change" | "lifecycle"): Promise<HttpResponseInit> {
  const token = validationToken(url);
  // Validation: echo the decoded token as text/plain within 10 s (change-notifications-delivery-webhooks).
  if (token !== undefined) return { status: 200, headers: { "content-type": "text/plain", "x-content-type-options": "nosniff" }, body: token };
  const secret = deps.config.secrets.webhookSecret;
  if (!secret) return { status: 503, jsonBody: { error: "webhooks are not configured" } };
  const started = Date.now();
  const left = (cap: number) => Math.max(50, Math.min(cap, WEBHOOK_BUDGET_MS - (Date.now() - started)));
  let parsed: ReturnType<typeof parseNotifications>;
  try {
    parsed = parseNotifications(body, secret);
  } catch (e) {
    return errorResponse(e);
  }
  let forged = parsed.forged;
  try {
    const ids = [...new Set(parsed.work.map((w) => w.subscriptionId))];
    const lookupMs = left(LOOKUP_MS);
    const records = new Map(await Promise.all(ids.map(async (id) => [id, await withDeadline(deps.state.getSubscription(id), lookupMs, "STATE_UNAVAILABLE", "subscription lookup")] as const)));
    const now = Date.now();
    const genuineWork = parsed.work.filter((w) => genuine(w, records.get(w.subscriptionId), now) || (forged++, false));
    if (forged) deps.log.warn("graph.notification.forged", { kind, forged });
    // Changes that are only the connector's own Exchange writes echoing back start no run. A
    // check that cannot answer in time counts as "not ours": one extra run at worst.
    const echoMs = left(MARK_MS);
    const own = await Promise.all(genuineWork.map((w) => withDeadline(ownGraphEcho(deps, w), echoMs, "STATE_UNAVAILABLE", "echo check").catch(() => false)));
    const work = genuineWork.filter((_, i) => !own[i]);
    const at = Date.now();
    const jobs = new Map<string, SyncRequest>();
    const add = (r: SyncRequest) => jobs.set(`${r.linkId}|${r.kind ?? "voicemail"}|${r.reason}|${r.subscriptionId ?? ""}`, r);
    const kindOf = (w: NotificationWork) => (w.kind === "voicemail" ? {} : { kind: w.kind });
    for (const w of work) {
      if (w.reason === "graph-change") add({ linkId: w.linkId, ...kindOf(w), reason: "graph-change", at });
      else if (w.reason === "graph-missed") add({ linkId: w.linkId, ...kindOf(w), reason: "graph-missed", at });
      else {
        // reauthorizationRequired, subscriptionRemoved, or an event this version does not
        // know (Graph adds them): the subscription upkeep handles it, never a sync run.
        if (w.reason === "graph-lifecycle") {
          deps.log.info("graph.lifecycle.unknown", { lifecycleEvent: w.lifecycleEvent?.slice(0, 100), linkId: w.linkId, subscriptionKind: w.kind });
          add({ linkId: w.linkId, ...kindOf(w), reason: "graph-missed", at }); // handled as a full reconcile
        }
        add({ linkId: w.linkId, kind: "subscriptions", reason: w.reason, subscriptionId: w.subscriptionId, subscriptionKind: w.kind, at });
      }
    }
    // Durable once enqueued; then 202. Change runs coalesce through the queued mark.
    await Promise.all([...jobs.values()].map(async (req) => {
      if (req.reason === "graph-change") {
        const fresh = await withDeadline(deps.state.markQueued(runKeyOf(req.linkId, req.kind ?? "voicemail"), QUEUED_MARK_SECONDS), left(MARK_MS), "STATE_UNAVAILABLE", "queued mark").catch(() => true);
        if (!fresh) return;
      }
      await withDeadline(enqueueSync(deps.syncQueue, req), left(WEBHOOK_BUDGET_MS), "STATE_UNAVAILABLE", "enqueue");
    }));
    return { status: 202 };
  } catch (e) {
    if (isConnectorError(e, "STATE_UNAVAILABLE")) {
      deps.log.warn("graph.notification.unavailable", { kind, ms: Date.now() - started, error: e });
      return unavailable();
    }
    return errorResponse(e, deps, "graph.notification");
  }
}

/**
 * The voice store's push hook waits for this answer inside its own delivery (Dovecot's Lua
 * push runs in the LDA / IMAP process), so it gets the same budget as Graph: 202 once the runs
 * are queued, 503 with Retry-After when storage cannot make them durable in time (the poll
 * timer syncs anyway).
 */
/** Users of one batch handled at once (a batch holds up to 1,000 events). */
const STORE_USERS_AT_ONCE = 16;

export async function handleStoreNotification(deps: Deps, endpointId: string, body: string, timestamp: string | null, signature: string | null): Promise<HttpResponseInit> {
  const started = Date.now();
  const left = () => Math.max(1, WEBHOOK_BUDGET_MS - (Date.now() - started));
  try {
    // The endpoint's own secret: an unknown endpoint, or one without a secret yet, gets the same
    // 401 as a bad signature (nothing to learn about which endpoints exist). Polling still syncs.
    const directory = await withDeadline(deps.directory(), left(), "STATE_UNAVAILABLE", "directory");
    const keys = directory.signingKeys(endpointId);
    const nowSeconds = Math.floor(Date.now() / 1000);
    const events = verifyStoreNotification({ keys, endpointId, body, timestampHeader: timestamp, signatureHeader: signature, nowSeconds, replay: deps.storeReplay });
    const at = Date.now();
    // One run per user and kind; which kinds a folder's change starts: src/app/storeChanges.ts.
    const byUser = new Map<string, StoreEvent[]>();
    for (const e of events) {
      const u = e.user.toLowerCase();
      if (!byUser.has(u)) byUser.set(u, []);
      byUser.get(u)!.push(e);
    }
    const slots = new Semaphore(STORE_USERS_AT_ONCE);
    await Promise.all([...byUser].map(([user, userEvents]) => slots.run(async () => {
      const link = await withDeadline(deps.state.findLinkByVoice(endpointId, user), left(), "STATE_UNAVAILABLE", "link lookup");
      if (link?.state !== "enabled") return;
      const profile = directory.linkProfile(link);
      const hasBackup = !!directory.backupOf(endpointId);
      const byKind = new Map<StoreChangeKind, StoreEvent[]>();
      for (const e of userEvents) {
        for (const kind of runsForFolderChange(profile, hasBackup, e.mailbox ?? "INBOX", e.event)) {
          if (!byKind.has(kind)) byKind.set(kind, []);
          byKind.get(kind)!.push(e);
        }
      }
      for (const [kind, kindEvents] of byKind) {
        // The mirror writes only to the backup store: a change here is never its own.
        // An echo check that cannot answer in time counts as "not ours": one extra run at worst.
        if (kind !== "mirror" && await withDeadline(ownEcho(deps, link.linkId, kind, kindEvents), left(), "STATE_UNAVAILABLE", "echo check").catch(() => false)) continue;
        await withDeadline(requestChangeRun(deps, { linkId: link.linkId, ...(kind === "voicemail" ? {} : { kind }), reason: "store-change", at }), left(), "STATE_UNAVAILABLE", "enqueue");
      }
    })));
    // Taken: the same request again is a replay. Not before: a 503 (or an answer the sender
    // stopped waiting for) is sent again with the same signature and must get through.
    deps.storeReplay.take(endpointId, signature!, nowSeconds);
    return { status: 202 };
  } catch (e) {
    if (isConnectorError(e, "STATE_UNAVAILABLE")) {
      deps.log.warn("store.notification.unavailable", { endpoint: endpointId.slice(0, 64), ms: Date.now() - started, error: e });
      return unavailable();
    }
    return errorResponse(e, deps, "store.notification");
  }
}

/**
 * A change notification (voicemail folder, contacts, e-mail) that reports only Exchange writes
 * the link's last run of that kind announced (src/state/leases.ts expectEchoes): the
 * connector's own PATCH, move or delete echoing back, which needs no run; for contacts also a
 * "created" of a contact already recorded (knownContacts). An item without an id, or another
 * change, is never an echo. The calendar is only read.
 */
async function ownGraphEcho(deps: Deps, w: NotificationWork): Promise<boolean> {
  if (w.kind === "calendar" || w.reason !== "graph-change" || !w.changes?.length) return false;
  const events: GraphEcho[] = [];
  const created: string[] = [];
  for (const c of w.changes) {
    if (c.id && c.changeType === "created" && w.kind === "contacts") created.push(c.id);
    else if (c.id && (c.changeType === "updated" || c.changeType === "deleted")) events.push({ id: c.id, change: c.changeType });
    else return false;
  }
  if (created.length && !(await knownContacts(deps, w.linkId, created))) return false;
  const own = !events.length || await deps.state.takeGraphEchoes(w.linkId, events, w.kind).catch(() => false);
  if (own) deps.log.debug("graph.notification.echo", { linkId: w.linkId, kind: w.kind, items: events.length });
  return own;
}

/**
 * Contacts Graph reports "created" that already have a record: the connector's own creates (the
 * id is known only once the create answered, so it cannot be announced before), or contacts a
 * run has already synced. Either way there is nothing to run for. One point read per id (the
 * records' id index, src/state/items.ts); a contact not yet recorded starts a run.
 */
async function knownContacts(deps: Deps, linkId: string, ids: string[]): Promise<boolean> {
  const known = await deps.state.knownGraphIds(linkId, "contacts", ids).catch(() => new Set<string>());
  return ids.every((id) => known.has(id));
}

/**
 * The push reports only writes the link's last run of `kind` announced (src/state/leases.ts):
 * the connector's own STORE, EXPUNGE or APPEND echoing back, which needs no run. Each announced
 * write answers one push (taken), so a later change to the same message starts a run again; an
 * event without a UID, or a delivery (MessageNew), is never an echo.
 */
async function ownEcho(deps: Deps, linkId: string, kind: EchoKind, events: StoreEvent[]): Promise<boolean> {
  const writes: StoreEcho[] = [];
  for (const e of events) {
    const write = e.event === "FlagsSet" || e.event === "FlagsClear" ? "flags" : e.event === "MessageExpunge" ? "expunge" : e.event === "MessageAppend" ? "append" : undefined;
    if (!write || !e.uid) return false;
    writes.push({ uid: e.uid, kind: write });
  }
  const own = await deps.state.takeStoreEchoes(linkId, writes, kind).catch(() => false);
  if (own) deps.log.debug("store.notification.echo", { linkId, kind, events: events.length });
  return own;
}
