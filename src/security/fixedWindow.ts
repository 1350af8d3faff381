/** At most `limit` events per `windowMs` in this process (a fixed window: cheap, and bounded memory). */
export class FixedWindow {
  private start = 0;
  private used = 0;
  constructor(private readonly limit: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}
  /** Counts one event; false when the window's budget is spent. */
  take(): boolean {
    const t = this.now();
    if (t - this.start >= this.windowMs) { this.start = t; this.used = 0; }
    if (this.used >= this.limit) return false;
    this.used++;
    return true;
  }
}
