/** A progress line on stderr: rows done / total, rate and ETA, redrawn at most 10 times a second. */
export interface Progress {
  /** Adds `n` finished rows. */
  add(n: number): void;
  /** Sets a label for the current phase (e.g. the group-by being swept). */
  phase(label: string): void;
  /** Clears the line. */
  done(): void;
}

/**
 * Returns a progress bar drawing on `stream` when `enabled` (callers pass `process.stderr.isTTY`), else a
 * no-op so logs and pipes stay clean.
 *
 * @example
 * const p = createProgress(1_000_000, process.stderr.isTTY === true);
 * p.add(2048); p.done();
 */
export function createProgress(
  total: number,
  enabled: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (!enabled || total <= 0) return { add() {}, phase() {}, done() {} };
  const started = performance.now();
  let doneRows = 0;
  let label = '';
  let lastDraw = 0;
  const draw = (force: boolean) => {
    const now = performance.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const seconds = (now - started) / 1000;
    const rate = seconds > 0 ? doneRows / seconds : 0;
    const fraction = Math.min(1, doneRows / total);
    const width = 24;
    const filled = Math.round(fraction * width);
    const eta = rate > 0 ? (total - doneRows) / rate : Infinity;
    const line =
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ` +
      `${doneRows.toLocaleString('en-US')}/${total.toLocaleString('en-US')} rows, ` +
      `${Math.round(rate).toLocaleString('en-US')} rows/s, ETA ${formatSeconds(eta)} ${label}`;
    stream.write(`\r${line.slice(0, (stream.columns ?? 120) - 1)}\x1b[K`);
  };
  return {
    add(n) {
      doneRows += n;
      draw(false);
    },
    phase(text) {
      label = text;
      draw(true);
    },
    done() {
      stream.write('\r\x1b[K');
    },
  };
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
