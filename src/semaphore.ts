/**
 * At most `limit` calls of `run` in flight; the rest wait in arrival order. Used for Graph's
 * per-mailbox concurrency cap (src/graph/client.ts) and for logins per credential
 * (src/app/credentialGate.ts).
 */
export class Semaphore {
  private active = 0;
  private waiters: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A freed slot is handed straight to the next waiter, so a newcomer cannot slip in
    // between and make it one more in flight than the limit.
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    }
  }
  /** Nobody in flight and nobody waiting: the owner may forget this semaphore. */
  get idle(): boolean {
    return this.active === 0 && this.waiters.length === 0;
  }
}
