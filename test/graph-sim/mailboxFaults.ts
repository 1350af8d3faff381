/**
 * Faults aimed at one mailbox, with a count of each fault actually delivered. The simulator's
 * `faults` are global: any mailbox's request consumes them, so a chaos case could not tell
 * whether its own mailbox ever saw its fault. Here a test arms faults for one user id and reads
 * back how many fired (`delivered`), so a case fails when its fault did not happen.
 * (Test controls, not Graph behaviour.)
 */

export interface MailboxFaultPlan {
  /** The mailbox's next N Graph requests answer 503. */
  fail5xxNext: number;
  /** The mailbox's next N Graph requests answer 429 with Retry-After: retryAfterSeconds. */
  throttleNext: number;
  retryAfterSeconds: number;
  /** The mailbox's next N requests answer only after stallMs (then do their work). */
  stallNext: number;
  stallMs: number;
  /** Every request of the mailbox takes this long (inside its concurrency window). */
  latencyMs: number;
  /** The next N change or lifecycle notifications for the mailbox are lost. */
  dropNotificationsNext: number;
}

export interface MailboxFaultCounts {
  fail5xx: number;
  throttled: number;
  stalled: number;
  slowed: number;
  notificationsDropped: number;
}

const none = (): MailboxFaultPlan => ({ fail5xxNext: 0, throttleNext: 0, retryAfterSeconds: 1, stallNext: 0, stallMs: 0, latencyMs: 0, dropNotificationsNext: 0 });
const zero = (): MailboxFaultCounts => ({ fail5xx: 0, throttled: 0, stalled: 0, slowed: 0, notificationsDropped: 0 });

export class MailboxFaults {
  private readonly plans = new Map<string, MailboxFaultPlan>();
  private readonly counts = new Map<string, MailboxFaultCounts>();

  /** The mailbox's plan, to arm (mutable): `sim.mailboxFaults.arm(userId).throttleNext = 40`. */
  arm(userId: string): MailboxFaultPlan {
    let p = this.plans.get(userId);
    if (!p) this.plans.set(userId, (p = none()));
    return p;
  }

  /** How many of each fault the mailbox has received so far. */
  delivered(userId: string): Readonly<MailboxFaultCounts> {
    return { ...(this.counts.get(userId) ?? zero()) };
  }

  private count(userId: string, what: keyof MailboxFaultCounts) {
    const c = this.counts.get(userId) ?? zero();
    c[what]++;
    this.counts.set(userId, c);
  }

  /** Before the request is admitted: a refusal it gets instead, consumed and counted. */
  refusal(userId: string): { status: 503 | 429; retryAfterSeconds: number } | undefined {
    const p = this.plans.get(userId);
    if (!p) return undefined;
    if (p.fail5xxNext > 0) { p.fail5xxNext--; this.count(userId, "fail5xx"); return { status: 503, retryAfterSeconds: 1 }; }
    if (p.throttleNext > 0) { p.throttleNext--; this.count(userId, "throttled"); return { status: 429, retryAfterSeconds: p.retryAfterSeconds }; }
    return undefined;
  }

  /** Inside the mailbox's concurrency window: how long the request waits before doing its work. */
  delayMs(userId: string): number {
    const p = this.plans.get(userId);
    if (!p) return 0;
    let ms = 0;
    if (p.latencyMs > 0) { ms += p.latencyMs; this.count(userId, "slowed"); }
    if (p.stallNext > 0) { p.stallNext--; ms += p.stallMs; this.count(userId, "stalled"); }
    return ms;
  }

  /** Whether this notification for the mailbox is lost (consumed and counted). */
  dropNotification(userId: string): boolean {
    const p = this.plans.get(userId);
    if (!p || p.dropNotificationsNext <= 0) return false;
    p.dropNotificationsNext--;
    this.count(userId, "notificationsDropped");
    return true;
  }
}
