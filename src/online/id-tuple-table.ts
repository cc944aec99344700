/**
 * Values by a tuple of `k` small non-negative ints (their `ids`; the stream worker's entities of a
 * multi-column key, by their interned key values): open addressing with linear probing over typed arrays,
 * so a lookup hashes a few ints and compares them in place, where nested Maps of ids took a Map probe, and
 * its cache misses, per column. Each value is added once and keeps its `ids` until deleted.
 *
 * @example
 * const table = new IdTupleTable<{ ids: number[] }>(2);
 * const e = { ids: [3, 7] };
 * table.add(e);
 * table.get(Int32Array.of(3, 7), [0, 1], 1, 0); // e (column c of tuple i at ids[cols[c] * stride + i])
 * table.delete(e);
 */
export class IdTupleTable<T extends { readonly ids: readonly number[] }> {
  private mask: number;
  /** Per slot, its entity's ids (`k` each); meaningful where `slots` holds an entity. */
  private keys: Int32Array;
  private slots: (T | null)[];
  /** Values held. */
  size = 0;

  /** `capacity`: initial slots, a power of 2 (doubled whenever half full). */
  constructor(
    private readonly k: number,
    capacity = 1024,
  ) {
    if (!(capacity >= 2 && (capacity & (capacity - 1)) === 0))
      throw new Error(`IdTupleTable: capacity must be a power of 2 >= 2, got ${capacity}`);
    this.mask = capacity - 1;
    this.keys = new Int32Array(capacity * k);
    this.slots = new Array<T | null>(capacity).fill(null);
  }

  /** The entity whose ids are `ids[cols[c] * stride + i]` for each column c, if cached. */
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

  /** Adds an entity (not cached yet). */
  add(e: T): void {
    if (2 * (this.size + 1) > this.slots.length) this.grow();
    const k = this.k;
    let s = this.home(e.ids, 0);
    while (this.slots[s] !== null) s = (s + 1) & this.mask;
    for (let c = 0; c < k; c++) this.keys[s * k + c] = e.ids[c];
    this.slots[s] = e;
    this.size++;
  }

  /** Removes a cached entity, shifting back the entities probed past its slot (no tombstones). */
  delete(e: T): void {
    const k = this.k;
    const mask = this.mask;
    const keys = this.keys;
    let i = this.home(e.ids, 0);
    while (this.slots[i] !== e) i = (i + 1) & mask;
    this.slots[i] = null;
    this.size--;
    for (let j = (i + 1) & mask; this.slots[j] !== null; j = (j + 1) & mask) {
      const h = this.home(keys, j * k);
      // The entity at j stays if its home lies cyclically in (i, j]; else it moves to the hole at i.
      if (i <= j ? h > i && h <= j : h > i || h <= j) continue;
      keys.copyWithin(i * k, j * k, j * k + k);
      this.slots[i] = this.slots[j];
      this.slots[j] = null;
      i = j;
    }
  }

  clear(): void {
    this.slots.fill(null);
    this.size = 0;
  }

  /** The home slot of the ids at `ids[at..at + k)`. */
  private home(ids: ArrayLike<number>, at: number): number {
    let h = 0x811c9dc5;
    for (let c = 0; c < this.k; c++) h = Math.imul(h ^ ids[at + c], 0x01000193);
    return mix(h) & this.mask;
  }

  private grow(): void {
    const old = this.slots;
    this.mask = 2 * old.length - 1;
    this.keys = new Int32Array(2 * old.length * this.k);
    this.slots = new Array<T | null>(2 * old.length).fill(null);
    this.size = 0;
    for (const e of old) if (e !== null) this.add(e);
  }
}

/** Spreads a hash's bits (the table's slot is its low bits). */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b);
  return h ^ (h >>> 16);
}
