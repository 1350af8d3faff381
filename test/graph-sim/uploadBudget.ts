/**
 * Outlook's upload budget, as Graph enforces it: "150 megabytes (MB) upload (PATCH, POST, PUT)
 * in a 5 minute period" per app and mailbox (https://learn.microsoft.com/en-us/graph/throttling-limits,
 * Outlook service limits). A request that would go over answers 429 with a Retry-After that
 * says when enough of the window's earlier uploads have aged out for it to fit.
 *
 * The simulator charges request bodies of POST/PATCH/PUT to a mailbox, including the
 * pre-authenticated upload-session PUTs (they are uploads to the same mailbox).
 */
export interface UploadBudgetOptions {
  /** Bytes per window (documented: 150 MB). */
  bytes?: number;
  /** Window length (documented: 5 minutes). */
  windowMs?: number;
  now?: () => number;
}

export const OUTLOOK_UPLOAD_BUDGET_BYTES = 150 * 1024 * 1024;
export const OUTLOOK_UPLOAD_WINDOW_MS = 5 * 60_000;

export class UploadBudget {
  readonly bytes: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private readonly spent = new Map<string, Array<{ at: number; bytes: number }>>();
  /** Requests refused so far, and the bytes uploaded per mailbox (for benchmarks). */
  readonly stats = { refused: 0, uploaded: new Map<string, number>() };

  constructor(options: UploadBudgetOptions = {}) {
    this.bytes = options.bytes ?? OUTLOOK_UPLOAD_BUDGET_BYTES;
    this.windowMs = options.windowMs ?? OUTLOOK_UPLOAD_WINDOW_MS;
    this.now = options.now ?? Date.now;
  }

  static counts(method: string): boolean {
    return method === "POST" || method === "PATCH" || method === "PUT";
  }

  /** Charges `bytes` to `mailbox`; `retryAfterSeconds` when it does not fit in the window. */
  charge(mailbox: string, bytes: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const now = this.now();
    const list = (this.spent.get(mailbox) ?? []).filter((e) => e.at > now - this.windowMs);
    let used = list.reduce((a, e) => a + e.bytes, 0);
    if (used + bytes > this.bytes) {
      // The earliest moment enough earlier uploads leave the window.
      let freeAt = now;
      for (const e of list) {
        if (used + bytes <= this.bytes) break;
        used -= e.bytes;
        freeAt = e.at + this.windowMs;
      }
      this.spent.set(mailbox, list);
      this.stats.refused++;
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((freeAt - now) / 1000)) };
    }
    list.push({ at: now, bytes });
    this.spent.set(mailbox, list);
    this.stats.uploaded.set(mailbox, (this.stats.uploaded.get(mailbox) ?? 0) + bytes);
    return { ok: true };
  }
}
