/**
 * Progress of long commands (import, resync or adoption of many links, verify) on the
 * terminal: a bar with the count, the rate and the time left, redrawn in place on stderr at
 * most every 100 ms. Quiet when stderr is not a terminal (scripts, CI, pipes) and with --json,
 * so nothing but the result reaches a log or a pipe.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export interface Progress {
  /** `done` of `total` finished. */
  update(done: number, total?: number): void;
  /** Ends the line (the bar stays, at its final figures). */
  finish(): void;
}

const QUIET: Progress = { update: () => undefined, finish: () => undefined };

export function progressBar(label: string, stream: ProgressStream, options: { quiet?: boolean; now?: () => number; width?: number } = {}): Progress {
  if (options.quiet || stream.isTTY !== true) return QUIET;
  const now = options.now ?? Date.now;
  const started = now();
  let last = -Infinity;
  let shown = false;
  let state = { done: 0, total: 0 };
  const draw = () => {
    shown = true;
    stream.write(`\r${progressLine(label, state.done, state.total, now() - started, options.width ?? Math.max(10, Math.min(30, (stream.columns ?? 80) - 60)))}\u001b[K`);
  };
  return {
    update(done, total = state.total) {
      state = { done, total };
      const t = now();
      if (t - last < 100 && done < total) return;
      last = t;
      draw();
    },
    finish() {
      if (state.total || shown) { draw(); stream.write("\n"); }
    },
  };
}

/** One line: `label [#####-----] 40/100  12.5/s  ETA 5s`. */
export function progressLine(label: string, done: number, total: number, elapsedMs: number, width = 20): string {
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(share * width);
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = rate > 0 && total > done ? (total - done) / rate : undefined;
  return `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}  ${rate >= 10 ? Math.round(rate) : rate.toFixed(1)}/s  ${done >= total && total > 0 ? `done in ${duration(elapsedMs / 1000)}` : `ETA ${eta === undefined ? "?" : duration(eta)}`}`;
}

function duration(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
