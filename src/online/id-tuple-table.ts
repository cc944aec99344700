/**
 * Values by a tuple of `k` small non-negative ints (their ids; the stream worker's entities of a
 * multi-column key, by their interned key values): open addressing with linear probing over typed arrays,
 * so a lookup hashes a few ints and compares them in place, where nested Maps of ids took a Map probe, and
 * its cache misses, per column. The table holds each value's ids (a value keeps no array of them) and
 * tells the value its slot (`slot`, kept up to date as values move), so deleting a value or reading its
 * ids needs no hashing. It grows when half full and shrinks when under an eighth full, so its size follows
 * what it holds after a burst.
 *
 * @example
 * const table = new IdTupleTable<{ slot: number }>(2);
 * const e = { slot: -1 };
 * table.add(e, Int32Array.of(3, 7), [0, 1], 1, 0); // ids of column c at ids[cols[c] * stride + i]
 * table.get(Int32Array.of(7, 3), [1, 0], 1, 0); // e
 * table.idAt(e.slot, 1); // 7
 * table.delete(e);
 */
export class IdTupleTable<T extends { slot: number }> {
  private mask: number;
  /** Per slot, its value's ids (`k` each); meaningful where `slots` holds a value. */
  private keys: Int32Array;
  private slots: (T | null)[];
  /** Values held. */
  size = 0;

  /** `minCapacity`: the initial and smallest number of slots, a power of 2. */
  constructor(
    private readonly k: number,
    private readonly minCapacity = 1024,
  ) {
    if (!(minCapacity >= 2 && (minCapacity & (minCapacity - 1)) === 0))
      throw new Error(`IdTupleTable: capacity must be a power of 2 >= 2, got ${minCapacity}`);
    this.mask = minCapacity - 1;
    this.keys = new Int32Array(minCapacity * k);
    this.slots = new Array<T | null>(minCapacity).fill(null);
  }

  /** Slots allocated (a power of 2). */
  get capacity(): number {
    return this.slots.length;
  }

  /** The value whose ids are `ids[cols[c] * stride + i]` for each column c, if held. */
  get(ids: Int32Array, cols: readonly number[], stride: number, i: number): T | undefined {
    const k = this.k;
    let h = 0x811c9dc5;
    for (let c = 0; c < k; c++) h = Math.imul(h ^ ids[cols[c] * stride + i], 0x01000193);
    const keys = this.keys;
    for (let s = mix(h) & this.mask; ; s = (s + 1) & this.mask) {
      const e = this.slots[s];
      if (e === null) return undefined;
      let c = 0;
      while (c < k && keys[s * k + c] === ids[cols[c] * stride + i]) c++;
      if (c === k) return e;
    }
  }

  /** Adds a value (not held yet) with the ids `ids[cols[c] * stride + i]`; sets its `slot`. */
  add(e: T, ids: Int32Array, cols: readonly number[], stride: number, i: number): void {
    if (2 * (this.size + 1) > this.slots.length) this.resize(2 * this.slots.length);
    const k = this.k;
    let h = 0x811c9dc5;
    for (let c = 0; c < k; c++) h = Math.imul(h ^ ids[cols[c] * stride + i], 0x01000193);
    let s = mix(h) & this.mask;
    while (this.slots[s] !== null) s = (s + 1) & this.mask;
    for (let c = 0; c < k; c++) this.keys[s * k + c] = ids[cols[c] * stride + i];
    this.slots[s] = e;
    e.slot = s;
    this.size++;
  }

  /** Column `c`'s id of the value at `slot` (a held value's `slot`). */
  idAt(slot: number, c: number): number {
    return this.keys[slot * this.k + c];
  }

  /** Removes a held value, shifting back the values probed past its slot (no tombstones). */
  delete(e: T): void {
    const k = this.k;
    const mask = this.mask;
    const keys = this.keys;
    let i = e.slot;
    if (this.slots[i] !== e) throw new Error(`IdTupleTable.delete: the value is not held at its slot ${i}`);
    this.slots[i] = null;
    e.slot = -1;
    this.size--;
    for (let j = (i + 1) & mask; this.slots[j] !== null; j = (j + 1) & mask) {
      const h = this.home(keys, j * k);
      // The value at j stays if its home lies cyclically in (i, j]; else it moves to the hole at i.
      if (i <= j ? h > i && h <= j : h > i || h <= j) continue;
      keys.copyWithin(i * k, j * k, j * k + k);
      const moved = this.slots[j]!;
      this.slots[i] = moved;
      moved.slot = i;
      this.slots[j] = null;
      i = j;
    }
    // Under an eighth full: shrink (to a quarter full, so a few adds and deletes do not flip it).
    if (8 * this.size < this.slots.length && this.slots.length > this.minCapacity) this.resize(this.fitted());
  }

  /**
   * Maps column `c`'s ids through `map` (`map[id]`: the new id), as when their dictionary renumbered them,
   * and rehashes (slots change). `map` leaves the ids below `moved` as they are: when the column holds only
   * those, nothing changes (no rehash).
   */
  remapColumn(c: number, map: Int32Array, moved = 0): void {
    const k = this.k;
    let s = 0;
    while (s < this.slots.length && (this.slots[s] === null || this.keys[s * k + c] < moved)) s++;
    if (s === this.slots.length) return;
    for (; s < this.slots.length; s++)
      if (this.slots[s] !== null) this.keys[s * k + c] = map[this.keys[s * k + c]];
    this.resize(Math.min(this.slots.length, this.fitted()));
  }

  /** Drops every value, back to `minCapacity` slots. */
  clear(): void {
    for (const e of this.slots) if (e !== null) e.slot = -1;
    this.mask = this.minCapacity - 1;
    this.keys = new Int32Array(this.minCapacity * this.k);
    this.slots = new Array<T | null>(this.minCapacity).fill(null);
    this.size = 0;
  }

  /** The home slot of the ids at `ids[at..at + k)`. */
  private home(ids: ArrayLike<number>, at: number): number {
    let h = 0x811c9dc5;
    for (let c = 0; c < this.k; c++) h = Math.imul(h ^ ids[at + c], 0x01000193);
    return mix(h) & this.mask;
  }

  /** The fewest slots, from `minCapacity` up, that leave the table at most a quarter full. */
  private fitted(): number {
    let capacity = this.minCapacity;
    while (capacity < 4 * this.size) capacity *= 2;
    return capacity;
  }

  /** Moves every value to a table of `capacity` slots. */
  private resize(capacity: number): void {
    const k = this.k;
    const oldKeys = this.keys;
    const oldSlots = this.slots;
    this.mask = capacity - 1;
    this.keys = new Int32Array(capacity * k);
    this.slots = new Array<T | null>(capacity).fill(null);
    for (let o = 0; o < oldSlots.length; o++) {
      const e = oldSlots[o];
      if (e === null) continue;
      let s = this.home(oldKeys, o * k);
      while (this.slots[s] !== null) s = (s + 1) & this.mask;
      for (let c = 0; c < k; c++) this.keys[s * k + c] = oldKeys[o * k + c];
      this.slots[s] = e;
      e.slot = s;
    }
  }
}

/** Spreads a hash's bits (the table's slot is its low bits). */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b);
  return h ^ (h >>> 16);
}
