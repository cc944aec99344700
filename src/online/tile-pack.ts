import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import type { StoredTile } from './store.ts';

/**
 * One `(groupBy, key)` as ONE value (the LMDB store's layout): all its tiles packed, then its event run, so
 * a commit writes one entry per touched entity instead of one per tile, and a read is one get.
 *
 * Format: u32 count, then per tile (sorted by level, start): f64 level, f64 start, u32 length, bytes;
 * then the entity's event run (store.ts layout 5; event-run.ts chunks), if any: all remaining bytes.
 * Little-endian. Fixed-width numbers keep parsing to plain offset reads.
 */
export function packTiles(tiles: readonly StoredTile[]): Buffer {
  let size = 4;
  for (const t of tiles) size += 20 + t.bytes.length;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(tiles.length, 0);
  let at = 4;
  for (const t of tiles) {
    out.writeDoubleLE(t.level, at);
    out.writeDoubleLE(t.start, at + 8);
    out.writeUInt32LE(t.bytes.length, at + 16);
    out.set(t.bytes, at + 20);
    at += 20 + t.bytes.length;
  }
  return out;
}

/** Where the packed tiles of `value` end (its run, if any, starts there); throws on a corrupt value. */
export function tilesEnd(value: Uint8Array): number {
  // Only the lengths are read (no DataView, no columns): a commit asks this of every entity it appends to.
  const size = value.length;
  if (size < 4) throw corrupt(size, 0);
  const n = u32At(value, 0);
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (at + 20 > size) throw corrupt(size, i);
    at += 20 + u32At(value, at + 16);
  }
  if (at > size) throw corrupt(size, n);
  return at;
}

/** The little-endian u32 at `at`. */
function u32At(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}

function corrupt(length: number, tiles: number): Error {
  return new Error(
    `packed tiles are corrupt: a ${length}-byte entity value ends inside tile ${tiles}; re-upload the group-by`,
  );
}

/**
 * Inverse of `packTiles`, plus the run as a last entry `{ level: EVENT_RUN_LEVEL, start: 0, bytes }` (what
 * `OnlineStore.readTiles` returns). Bytes are views into `packed` (keep it alive, never mutate it).
 */
export function unpackTiles(packed: Uint8Array): StoredTile[] {
  const columns = scratch.fromPacked(packed);
  const out: StoredTile[] = new Array(columns.length);
  for (let i = 0; i < columns.length; i++)
    out[i] = { level: columns.level[i]!, start: columns.start[i]!, bytes: columns.bytes(i) };
  return out;
}

/** What released columns point at. */
const EMPTY = new Uint8Array(0);

/**
 * One entity's stored entries as columns (level, start, bytes by index), sorted like `readTiles` returns
 * them: exact-from marker, tiles by (level, start), then the run (level `EVENT_RUN_LEVEL`). Filled either
 * straight from a packed value, without an object per tile, or from `StoredTile`s; one instance is reused
 * for every entity of a read, so the fetch path allocates nothing per tile it does not decode.
 *
 * @example
 * const columns = new TileColumns();
 * columns.fromPacked(db.getBinaryFast(key)); // then columns.level[i], columns.bytes(i)
 */
export class TileColumns {
  length = 0;
  /** After `fromPacked`: where the packed tiles end and the run (if any) begins. */
  runFrom = 0;
  level = new Float64Array(16);
  start = new Float64Array(16);
  /** Entry `i`'s bytes are `source(i)[from[i], to[i])`, the bytes `bytes(i)` views (for readers that take a range). */
  from = new Int32Array(16);
  to = new Int32Array(16);
  private data: Uint8Array = new Uint8Array(0);
  private list: readonly StoredTile[] | null = null;
  /** A view of `viewBuffer`, the buffer of `viewOf` (the last packed value read), which starts at `viewBase` in it. */
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private viewBuffer: ArrayBufferLike | null = null;
  private viewOf: Uint8Array | null = null;
  private viewBase = 0;
  /** All of `viewBuffer`, the array entries filled by `fromPacked` index. */
  private whole: Uint8Array = new Uint8Array(0);

  /** Entry `i`'s bytes: a view, valid as long as the source it was filled from. */
  bytes(i: number): Uint8Array {
    if (this.list !== null) return this.list[i]!.bytes;
    const data = this.data;
    return new Uint8Array(data.buffer, data.byteOffset + this.from[i]!, this.to[i]! - this.from[i]!);
  }

  /** The array holding entry `i`'s bytes at `from[i]..to[i]` (no view is made). */
  source(i: number): Uint8Array {
    return this.list !== null ? this.list[i]!.bytes : this.data;
  }

  /**
   * Drops the references to the last value read and its buffer (a Redis reply's socket chunk, kept alive
   * otherwise until the next read); the columns are empty after it.
   */
  release(): void {
    this.list = this.viewOf = this.viewBuffer = null;
    this.data = this.whole = EMPTY;
    this.view = new DataView(EMPTY.buffer);
    this.length = 0;
  }

  /**
   * Fills from a packed entity value (undefined: no entity) at `value[offset, end)` (entries' `from`/`to`
   * and `runFrom` index the array `source` returns: all of the buffer under `value`); throws naming the fix
   * on a corrupt value. `end` defaults to `value.length`, not the buffer's size, so LMDB's shared read
   * buffer (whose `length` lmdb sets to the value's size) can be passed as is; a Redis reply read as one
   * buffer passes each value's range in it (no view per value).
   */
  fromPacked(value: Uint8Array | undefined, offset = 0, end = value?.length ?? 0): this {
    this.list = null;
    if (value === undefined) {
      this.length = 0;
      return this;
    }
    // One DataView (and one byte view) per underlying buffer, built once (`buffer` is a runtime call): LMDB
    // hands out one read buffer for every get, and the values of a Redis reply are views into a few socket
    // chunks. Entries then index that buffer, so readers decoding them (ByteReader) see one array too.
    if (value !== this.viewOf) {
      const buffer = value.buffer;
      if (buffer !== this.viewBuffer) {
        this.view = new DataView(buffer);
        this.whole = new Uint8Array(buffer);
        this.viewBuffer = buffer;
      }
      this.viewOf = value;
      this.viewBase = value.byteOffset;
    }
    this.data = this.whole;
    const view = this.view;
    const base = this.viewBase;
    const size = end - offset;
    if (size < 4) throw corrupt(size, 0);
    const n = view.getUint32(base + offset, true);
    this.reserve(n + 1);
    const stop = base + end;
    let at = base + offset + 4;
    for (let i = 0; i < n; i++) {
      if (at + 20 > stop) throw corrupt(size, i);
      this.level[i] = view.getFloat64(at, true);
      this.start[i] = view.getFloat64(at + 8, true);
      this.from[i] = at + 20;
      at += 20 + view.getUint32(at + 16, true);
      this.to[i] = at;
    }
    if (at > stop) throw corrupt(size, n);
    this.length = n;
    this.runFrom = at;
    if (at < stop) {
      this.level[n] = EVENT_RUN_LEVEL;
      this.start[n] = 0;
      this.from[n] = at;
      this.to[n] = stop;
      this.length = n + 1;
    }
    return this;
  }

  /** Fills from stored tiles as `readTiles` returns them (bytes stay the list's). */
  fromTiles(list: readonly StoredTile[]): this {
    this.reserve(list.length);
    for (let i = 0; i < list.length; i++) {
      this.level[i] = list[i]!.level;
      this.start[i] = list[i]!.start;
      this.from[i] = 0;
      this.to[i] = list[i]!.bytes.length;
    }
    this.list = list;
    this.length = list.length;
    return this;
  }

  private reserve(n: number): void {
    if (n <= this.level.length) return;
    const size = Math.max(n, this.level.length * 2);
    this.level = new Float64Array(size);
    this.start = new Float64Array(size);
    this.from = new Int32Array(size);
    this.to = new Int32Array(size);
  }
}

/** A tile upsert (`bytes`) or delete (null) for `mergePacked`. */
export interface PackedWrite {
  readonly level: number;
  readonly start: number;
  readonly bytes: Uint8Array | null;
}

const byAddress = (a: PackedWrite, b: PackedWrite) => a.level - b.level || a.start - b.start;

/** Whether `writes` is already sorted by address (`sort` copies the array and calls back per comparison). */
function inOrder(writes: readonly PackedWrite[]): boolean {
  for (let i = 1; i < writes.length; i++) if (byAddress(writes[i - 1], writes[i]) > 0) return false;
  return true;
}

/**
 * A reusable output for `mergePacked`, for writers whose store copies each value at once (an LMDB put
 * inside a write transaction): merging every entity of a commit into one buffer instead of a fresh one
 * each saves an allocation per touched entity, most of a commit's garbage.
 */
export class PackedBuffer {
  bytes = Buffer.allocUnsafe(1 << 16);
  /** Where the tiles of the value last merged into it end (its run, if any, starts there). */
  tilesEnd = 0;
  /**
   * Views of `bytes` by length (index), made once each: a commit merges every touched entity here, and a
   * fresh `subarray` per entity was a tenth of a stream worker's garbage. An array indexed by length, not a
   * Map: the lookup is one per entity a commit writes (most of them a few dozen bytes).
   */
  private views: (Buffer | undefined)[] = new Array(MAX_VIEW);

  /** The first `size` bytes, grown (content dropped) when smaller. */
  take(size: number): Buffer {
    if (size > this.bytes.length) {
      this.bytes = Buffer.allocUnsafe(Math.max(size, 2 * this.bytes.length));
      this.views = new Array(MAX_VIEW);
    }
    if (size >= MAX_VIEW) return this.bytes.subarray(0, size);
    return (this.views[size] ??= this.bytes.subarray(0, size));
  }
}

/** Lengths from this one get a fresh view each time (rare: entity values are mostly well under 1 KiB). */
const MAX_VIEW = 16384;

/**
 * Copies `src[from, to)` to `dst` at `at`: a byte loop for very short ranges, where a view for `set` costs
 * an allocation and more time than the loop; `set` (a memmove, ~0.1 µs whatever the size) beyond, where the
 * loop costs ~1-3 ns a byte (a 300-byte entity value: ~4x the `set`).
 */
function copyRange(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): void {
  if (to - from <= 32) for (let i = from; i < to; i++) dst[at++] = src[i];
  // All of `src` (a run append, a tile write) needs no view.
  else if (from === 0 && to === src.byteLength) dst.set(src, at);
  else dst.set(new Uint8Array(src.buffer, src.byteOffset + from, to - from), at);
}

/**
 * `packed` with tile `writes` applied and its run kept (`run` undefined), dropped (null) or appended to
 * (bytes), working on the packed bytes directly: unchanged tiles are copied as raw entries, without
 * building an object per stored tile (a commit rewrites every entity it touches, and most of an entity's
 * tiles are unchanged). Later writes of one address win, as if applied one by one. Returns null when
 * neither a tile nor run bytes are left. `writes` is sorted in place. With `into`, the result is a view
 * of its buffer, valid until the next merge into it, and `into.tilesEnd` tells where its tiles end.
 *
 * @example
 * const next = mergePacked(db.getBinaryFast(key), writes, runAppend); // null → remove the entry
 */
export function mergePacked(
  packed: Uint8Array | undefined,
  writes: PackedWrite[],
  run?: Uint8Array | null,
  into?: PackedBuffer,
): Buffer | null {
  if (writes.length === 0 && run && run.length > 0) {
    // A run append alone (most commits of sparse entities): the stored value, then the new run bytes.
    // tilesEnd throws on a corrupt value, as the merge would.
    const end = packed === undefined ? 4 : tilesEnd(packed);
    const size = (packed === undefined ? 4 : packed.length) + run.length;
    const out = into === undefined ? Buffer.allocUnsafe(size) : into.take(size);
    if (packed === undefined) out.writeUInt32LE(0, 0);
    else copyRange(packed, 0, packed.length, out, 0);
    copyRange(run, 0, run.length, out, size - run.length);
    if (into !== undefined) into.tilesEnd = end;
    return out;
  }
  // Stable: equal addresses keep their order. Writers mostly list them in order already (TileSet.flushChanges).
  if (writes.length > 1 && !inOrder(writes)) writes.sort(byAddress);
  // `length`, not `byteLength`: LMDB's shared read buffer sets its `length` to the value's size.
  const view = packed === undefined ? null : new DataView(packed.buffer, packed.byteOffset, packed.length);
  const n = view === null ? 0 : view.getUint32(0, true);
  const end = packed === undefined ? 4 : tilesEnd(packed);
  const oldRun = packed === undefined ? 0 : packed.length - end;
  const runSize = run === null ? 0 : oldRun + (run?.length ?? 0);
  // Pass 1 sizes the result, pass 2 writes it; both walk the same merge.
  let count = 0;
  let size = 4;
  let out: Buffer | null = null;
  let outAt = 4;
  for (let pass = 0; pass < 2; pass++) {
    if (pass === 1) {
      if (count === 0 && runSize === 0) return null;
      out = into === undefined ? Buffer.allocUnsafe(size + runSize) : into.take(size + runSize);
      out.writeUInt32LE(count, 0);
      if (into !== undefined) into.tilesEnd = size;
    }
    let at = 4;
    let i = 0;
    let j = 0;
    /** Pass 1: the stored entries `[keptFrom, keptTo)` of `packed` are unchanged and not yet copied. */
    let keptFrom = 4;
    let keptTo = 4;
    while (i < n || j < writes.length) {
      const w = j < writes.length ? writes[j] : null;
      if (w !== null && j + 1 < writes.length && byAddress(writes[j + 1], w) === 0) {
        j++; // a later write of the same address wins
        continue;
      }
      let cmp = 1; // > 0: the write comes first (or no stored entry is left)
      if (i < n) {
        const level = view!.getFloat64(at, true);
        const start = view!.getFloat64(at + 8, true);
        cmp = w === null ? -1 : level - w.level || start - w.start;
      }
      if (cmp < 0) {
        // An unchanged stored entry: copied as is, together with the unchanged ones right after it.
        const len = 20 + view!.getUint32(at + 16, true);
        if (pass === 0) {
          count++;
          size += len;
        } else {
          if (keptTo !== at) {
            copyRange(packed!, keptFrom, keptTo, out!, outAt);
            outAt += keptTo - keptFrom;
            keptFrom = at;
          }
          keptTo = at + len;
        }
        at += len;
        i++;
        continue;
      }
      if (pass === 1 && keptTo > keptFrom) {
        copyRange(packed!, keptFrom, keptTo, out!, outAt);
        outAt += keptTo - keptFrom;
        keptFrom = keptTo;
      }
      if (cmp === 0) {
        at += 20 + view!.getUint32(at + 16, true);
        i++;
      }
      if (w!.bytes !== null) {
        if (pass === 0) {
          count++;
          size += 20 + w!.bytes.length;
        } else {
          out!.writeDoubleLE(w!.level, outAt);
          out!.writeDoubleLE(w!.start, outAt + 8);
          out!.writeUInt32LE(w!.bytes.length, outAt + 16);
          copyRange(w!.bytes, 0, w!.bytes.length, out!, outAt + 20);
          outAt += 20 + w!.bytes.length;
        }
      }
      j++;
    }
    if (pass === 1 && keptTo > keptFrom) {
      copyRange(packed!, keptFrom, keptTo, out!, outAt);
      outAt += keptTo - keptFrom;
    }
  }
  if (run !== null) {
    if (oldRun > 0) copyRange(packed!, end, packed!.length, out!, outAt);
    if (run !== undefined) copyRange(run, 0, run.length, out!, outAt + oldRun);
  }
  return out;
}

/** Reused by `unpackTiles` and `tilesEnd` (synchronous, so one call uses it at a time). */
const scratch = new TileColumns();
