/**
 * How the simulator delivers change and lifecycle notifications, following
 * https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks:
 *  - batching: notifications for one URL that occur close together go in one POST
 *    (`{ value: [...] }` may mix items of several subscriptions);
 *  - answer window: a receiver that has not answered within 3 s has failed that POST (the
 *    service's HTTP client gives up; a publish over 2,900 ms counts as slow);
 *  - retries: exponential backoff for up to 4 hours of model time (compressed by
 *    `timeScale`, e.g. 0.01 makes 4 hours 144 s);
 *  - slow endpoints: within a 10-minute window (model time), more than 10 % slow answers mark
 *    the endpoint "slow" (new notifications delayed 10 s), more than 15 % "drop" (new
 *    notifications dropped for 10 minutes, unrecoverably); the subscriptions then get a
 *    `missed` lifecycle event (change-notifications-lifecycle-events: notifications missed,
 *    e.g. due to throttling) once the endpoint is out of the drop state.
 */
export interface DeliveryStats {
  notificationsSent: number;
  notificationsFailed: number;
  notificationsDropped: number;
  /** POSTs delivered that carried more than one notification. */
  batchesSent: number;
  slowAnswers: number;
  endpointThrottled: number;
}

export interface DeliveryOptions {
  /** Model time per real time (0.01: a 4-hour retry horizon lasts 144 s). */
  timeScale: number;
  /** How long notifications for one URL wait to be batched (real ms). */
  batchWindowMs?: number;
  /** The answer window (real ms; Graph's is 3 s). */
  answerWindowMs?: number;
  stats: DeliveryStats;
  isStopped: () => boolean;
  timers: Set<NodeJS.Timeout>;
  /** Fired when the drop state of an endpoint ends: the subscriptions that lost notifications. */
  onDropped: (url: string, subscriptionIds: Set<string>) => void;
}

const ANSWER_WINDOW_MS = 3_000;
const SLOW_MS = 2_900;
const RETRY_HORIZON_MS = 4 * 3600_000;
const THROTTLE_WINDOW_MS = 10 * 60_000;
const SLOW_DELAY_MS = 10_000;
const DROP_FOR_MS = 10 * 60_000;
const MAX_BATCH = 100;
/** Too few answers say nothing about an endpoint's share of slow ones. */
const MIN_SAMPLES = 5;

interface Endpoint {
  pending: Array<Record<string, unknown>>;
  flushTimer?: NodeJS.Timeout;
  answers: Array<{ at: number; slow: boolean }>;
  state: "normal" | "slow" | "drop";
  dropUntil: number;
  droppedSubs: Set<string>;
}

export class NotificationDelivery {
  private readonly endpoints = new Map<string, Endpoint>();
  /** Test controls (chaos): the answer window and the batching wait, changeable while running. */
  answerWindowMs: number;
  batchWindowMs: number;
  constructor(private readonly o: DeliveryOptions) {
    this.answerWindowMs = o.answerWindowMs ?? ANSWER_WINDOW_MS;
    this.batchWindowMs = o.batchWindowMs ?? 20;
  }

  /** Real milliseconds for a span of model time. */
  private real(modelMs: number): number {
    return modelMs * this.o.timeScale;
  }

  private endpoint(url: string): Endpoint {
    let e = this.endpoints.get(url);
    if (!e) { e = { pending: [], answers: [], state: "normal", dropUntil: 0, droppedSubs: new Set() }; this.endpoints.set(url, e); }
    return e;
  }

  /** Where an endpoint stands (tests and the chaos run read it). */
  stateOf(url: string): Endpoint["state"] {
    return this.endpoint(url).state;
  }

  private later(ms: number, f: () => void) {
    const t = setTimeout(() => { this.o.timers.delete(t); f(); }, ms);
    this.o.timers.add(t);
  }

  /** Queues one notification item for `url`; it goes out with others that arrive meanwhile. */
  send(url: string, item: Record<string, unknown>, immediate = false) {
    const e = this.endpoint(url);
    this.refreshState(e, url);
    if (e.state === "drop") {
      this.o.stats.notificationsDropped++;
      if (typeof item.subscriptionId === "string" && !item.lifecycleEvent) e.droppedSubs.add(item.subscriptionId);
      return;
    }
    e.pending.push(item);
    if (e.pending.length >= MAX_BATCH) { this.flush(url); return; }
    if (e.flushTimer) return;
    const wait = (immediate ? 0 : this.batchWindowMs) + (e.state === "slow" ? this.real(SLOW_DELAY_MS) : 0);
    e.flushTimer = setTimeout(() => { this.o.timers.delete(e.flushTimer!); e.flushTimer = undefined; this.flush(url); }, wait);
    this.o.timers.add(e.flushTimer);
  }

  /** Sends what is pending for `url` now. */
  flush(url: string) {
    const e = this.endpoint(url);
    if (e.flushTimer) { clearTimeout(e.flushTimer); this.o.timers.delete(e.flushTimer); e.flushTimer = undefined; }
    const items = e.pending.splice(0, MAX_BATCH);
    if (!items.length) return;
    this.post(url, items, Date.now(), 0);
    if (e.pending.length) this.flush(url);
  }

  private post(url: string, items: Array<Record<string, unknown>>, firstAt: number, attempt: number) {
    if (this.o.isStopped()) return;
    const e = this.endpoint(url);
    const started = Date.now();
    const window = Math.max(1, this.answerWindowMs);
    fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ value: items }), signal: AbortSignal.timeout(window) })
      .then(async (res) => {
        await res.body?.cancel().catch(() => undefined);
        this.answered(e, url, Date.now() - started > Math.min(SLOW_MS, window - 100) || Date.now() - started >= window);
        if (res.status < 200 || res.status >= 300) throw new Error(String(res.status));
        this.o.stats.notificationsSent += items.length;
        if (items.length > 1) this.o.stats.batchesSent++;
      })
      .catch((err: unknown) => {
        if ((err as Error)?.name === "TimeoutError" || (err as Error)?.name === "AbortError") this.answered(e, url, true);
        this.o.stats.notificationsFailed += items.length;
        // Exponential backoff (1, 2, 4 ... model minutes, at most an hour apart) for up to 4 hours of model time.
        const delay = Math.min(3600_000, 60_000 * 2 ** attempt);
        if (this.modelElapsed(firstAt) + delay > RETRY_HORIZON_MS) return;
        this.later(this.real(delay), () => this.post(url, items, firstAt, attempt + 1));
      });
  }

  private modelElapsed(since: number): number {
    return (Date.now() - since) / this.o.timeScale;
  }

  private answered(e: Endpoint, url: string, slow: boolean) {
    const now = Date.now();
    e.answers.push({ at: now, slow });
    if (slow) this.o.stats.slowAnswers++;
    this.refreshState(e, url);
  }

  private refreshState(e: Endpoint, url: string) {
    const now = Date.now();
    if (e.state === "drop") {
      if (now < e.dropUntil) return;
      // Out of the drop state: tell each subscription that lost notifications.
      e.state = "normal";
      e.answers = [];
      const lost = new Set(e.droppedSubs);
      e.droppedSubs.clear();
      if (lost.size) this.o.onDropped(url, lost);
    }
    // Compressed model time must not shrink the window below a few answer windows (real time).
    const window = Math.max(this.real(THROTTLE_WINDOW_MS), 10 * this.answerWindowMs);
    e.answers = e.answers.filter((a) => now - a.at < window);
    if (e.answers.length < MIN_SAMPLES) { if (e.state === "slow") e.state = "normal"; return; }
    const share = e.answers.filter((a) => a.slow).length / e.answers.length;
    const next = share > 0.15 ? "drop" : share > 0.1 ? "slow" : "normal";
    if (next !== e.state && next !== "normal") this.o.stats.endpointThrottled++;
    e.state = next;
    if (next === "drop") {
      e.dropUntil = now + this.real(DROP_FOR_MS);
      this.later(this.real(DROP_FOR_MS) + 10, () => this.refreshState(e, url));
    }
  }
}
