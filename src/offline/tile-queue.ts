import type { RowAggregator } from './row-aggregator.ts';

/**
 * A FIFO of completed hop tiles with O(1) amortized aggregate, for the body `[B - W, B)` of a sliding
 * window (the classic two-stack queue, so non-invertible ops like min, max and top_k need no "subtract").
 *
 * Invariants:
 * 1. Tiles are pushed in increasing start order and never mutated afterwards (they may be shared by
 *    several queues of the same hop); the queue only clones and merges them into its own aggregates.
 * 2. `back` holds the newest tiles; `backAgg` is the merge of the first `backFolded` of them (null when
 *    none), folded lazily when read: tiles evicted before any query reads them are never merged.
 * 3. `front` holds the oldest tiles with the oldest last; `frontAggs[i]` is the merge of `front[0..i]`,
 *    so the last entry aggregates the whole front.
 * 4. The queue's aggregate is `frontAggs[last] ⊕ backAgg`; merge order is irrelevant (AggOp contract 4).
 * @internal
 */
export class TileQueue<Ir> {
  private backStarts: number[] = [];
  private backTiles: Ir[][] = [];
  private backAgg: Ir[] | null = null;
  private backFolded = 0;
  private frontStarts: number[] = [];
  private frontAggs: Ir[][] = [];

  constructor(private readonly agg: RowAggregator<Ir>) {}

  clear(): void {
    this.backStarts.length = 0;
    this.backTiles.length = 0;
    this.backAgg = null;
    this.backFolded = 0;
    this.frontStarts.length = 0;
    this.frontAggs.length = 0;
  }

  push(start: number, tile: Ir[]): void {
    this.backStarts.push(start);
    this.backTiles.push(tile);
  }

  /** Drops tiles starting before `minStart`. */
  evictBefore(minStart: number): void {
    for (;;) {
      if (this.frontStarts.length === 0) {
        if (this.backStarts.length === 0 || this.backStarts[0] >= minStart) return;
        return this.flip(minStart); // keeps only tiles starting at or after minStart
      }
      if (this.frontStarts[this.frontStarts.length - 1] >= minStart) return;
      this.frontStarts.pop();
      this.frontAggs.pop();
    }
  }

  /** The aggregate of the front part, or null. Read-only for the caller. */
  frontAggregate(): Ir[] | null {
    const n = this.frontAggs.length;
    return n === 0 ? null : this.frontAggs[n - 1];
  }

  /** The aggregate of the back part, or null. Read-only for the caller. */
  backAggregate(): Ir[] | null {
    const tiles = this.backTiles;
    for (; this.backFolded < tiles.length; this.backFolded++) {
      const tile = tiles[this.backFolded];
      if (this.backAgg === null) this.backAgg = this.agg.clone(tile);
      else this.agg.merge(this.backAgg, tile);
    }
    return this.backAgg;
  }

  /**
   * Moves the back tiles starting at or after `minStart` to the front, newest first, building suffix
   * aggregates toward the oldest; older ones are dropped without any (a sparse key's first query evicts
   * most of its history at once).
   */
  private flip(minStart: number): void {
    let first = 0;
    while (first < this.backStarts.length && this.backStarts[first] < minStart) first++;
    let acc: Ir[] | null = null;
    for (let i = this.backTiles.length - 1; i >= first; i--) {
      const tile = this.backTiles[i];
      if (acc === null) acc = this.agg.clone(tile);
      else {
        acc = this.agg.clone(acc);
        this.agg.merge(acc, tile);
      }
      this.frontStarts.push(this.backStarts[i]);
      this.frontAggs.push(acc);
    }
    this.backStarts.length = 0;
    this.backTiles.length = 0;
    this.backAgg = null;
    this.backFolded = 0;
  }
}
