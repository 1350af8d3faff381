/**
 * At most `limit` calls of `run` in flight; the rest wait in arrival order. Used for Graph's
 * per-mailbox concurrency cap (src/graph/client.ts) and for logins per credential
 * (src/app/credentialGate.ts).
 */
export class Semaphore {
  private active = 0;
  private waiters: Array<() => void> = [];
  /** A number, or a function read at every admission (a limit that may grow, e.g. once a
   *  credential is seen working). */
  constructor(private readonly limit: number | (() => number)) {}
  private get max(): number {
    return typeof this.limit === "number" ? this.limit : this.limit();
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A freed slot is handed straight to the next waiter (counted before it wakes), so a
    // newcomer cannot slip in between and make it one more in flight than the limit.
    if (this.active >= this.max) await new Promise<void>((r) => this.waiters.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      // Several waiters may go at once when the limit has grown since they queued.
      while (this.waiters.length > 0 && this.active < this.max) {
        this.active++;
        this.waiters.shift()!();
      }
    }
  }
  /** Nobody in flight and nobody waiting: the owner may forget this semaphore. */
  get idle(): boolean {
    return this.active === 0 && this.waiters.length === 0;
  }
}
