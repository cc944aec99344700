/**
 * @internal The tiles of one level of one TileSet: parallel arrays sorted by start. An entity holds few
 * tiles per level and events arrive mostly in time order, so sorted arrays (append at the end, evict a
 * prefix, binary-search the rest) beat a Map in both speed and memory.
 */
export class LevelTiles<T> {
  // Replaced (not mutated) by the first `insert`: read them anew after an insert.
  starts: number[] = [];
  slots: T[] = [];
  /** Small-integer flags per tile, owned by the caller (TileSet keeps stored/dirty bits here). */
  flags: number[] = [];

  get size(): number {
    return this.starts.length;
  }

  /** Index of the first tile with start >= `start` (size when none). */
  lowerBound(start: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    if (hi > 0 && starts[hi - 1] < start) return hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid] < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the tile at `start`, or -1. */
  indexOf(start: number): number {
    // Events arrive mostly in time order, so the newest tile is the usual hit.
    const last = this.starts.length - 1;
    if (last >= 0 && this.starts[last] <= start) return this.starts[last] === start ? last : -1;
    const i = this.lowerBound(start);
    return i < this.starts.length && this.starts[i] === start ? i : -1;
  }

  /** Inserts a tile at `start`, which must be absent; returns its index. */
  insert(start: number, slot: T, flags = 0): number {
    const i = this.lowerBound(start);
    if (i === 0 && this.starts.length === 0) {
      // Array literals hold exactly one element, where a push onto [] reserves room for 17: most levels of
      // a sparse key hold one tile, and the spare room was most of a tile set's memory (and allocation).
      this.starts = [start];
      this.slots = [slot];
      this.flags = [flags];
    } else if (i === this.starts.length) {
      this.starts.push(start);
      this.slots.push(slot);
      this.flags.push(flags);
    } else {
      this.starts.splice(i, 0, start);
      this.slots.splice(i, 0, slot);
      this.flags.splice(i, 0, flags);
    }
    return i;
  }

  /** Removes every tile with start < `minStart`, calling `onRemove` for each in ascending order. */
  evictBefore(minStart: number, onRemove: (start: number, slot: T, flags: number) => void): void {
    if (this.starts.length === 0 || this.starts[0] >= minStart) return;
    const k = this.lowerBound(minStart);
    for (let j = 0; j < k; j++) onRemove(this.starts[j], this.slots[j], this.flags[j]);
    dropPrefix(this.starts, k);
    dropPrefix(this.slots, k);
    dropPrefix(this.flags, k);
  }
}

/** Removes the first `k` items in place (`splice` would allocate an array of the removed items). */
function dropPrefix<T>(a: T[], k: number): void {
  const n = a.length;
  for (let j = k; j < n; j++) a[j - k] = a[j];
  a.length = n - k;
}
