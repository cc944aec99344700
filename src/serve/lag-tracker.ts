/**
 * Tracks, per worker partition, whether the stream pipeline is behind: events appended to the log more than
 * `staleAfterMs` ago that the worker has not applied yet. A plain "lag > 0" test would call a healthy,
 * busy stream stale forever; remembering when each end offset was observed gives the age of the oldest
 * unapplied event instead.
 *
 * Invariant: `samples` holds (observedAt, endOffset) pairs with increasing times; a sample is dropped once the
 * worker's next offset reaches its end offset, so the head sample is the oldest still-unapplied observation.
 *
 * @example
 * const lag = new LagTracker(5000);
 * lag.observe(1000, 0, 10); // t=1000ms: log end 10, worker at 0
 * lag.isBehind(7000, 5);    // true: events seen at t=1000 are still unapplied 6 s later
 * lag.isBehind(7000, 10);   // false: caught up
 */
export class LagTracker {
  private readonly samples: { at: number; end: number }[] = [];
  private lastLag = 0;

  constructor(readonly staleAfterMs: number) {}

  /** Records the log end offset seen at `now` and the worker's next offset. */
  observe(now: number, nextOffset: number, endOffset: number): void {
    this.lastLag = Math.max(0, endOffset - nextOffset);
    this.dropApplied(nextOffset);
    const last = this.samples.at(-1);
    if (endOffset > nextOffset && (last === undefined || endOffset > last.end))
      this.samples.push({ at: now, end: endOffset });
  }

  /** Whether events observed more than `staleAfterMs` before `now` are still unapplied. */
  isBehind(now: number, nextOffset: number): boolean {
    this.dropApplied(nextOffset);
    const head = this.samples[0];
    return head !== undefined && now - head.at > this.staleAfterMs;
  }

  /** Events appended but not applied at the last observation. */
  get lag(): number {
    return this.lastLag;
  }

  private dropApplied(nextOffset: number): void {
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.end <= nextOffset) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }
}
