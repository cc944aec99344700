import type { StoredTile } from './store.ts';

/**
 * Packs all tiles of one `(groupBy, key)` into one value (the LMDB store's layout), so a commit writes one
 * entry per touched entity instead of one per tile, and a read is one get.
 *
 * Format: u32 count, then per tile (sorted by level, start): f64 level, f64 start, u32 length, bytes;
 * little-endian. Fixed-width numbers keep parsing to plain offset reads.
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

/** Inverse of `packTiles`; tile bytes are views into `packed` (keep `packed` alive, never mutate it). */
export function unpackTiles(packed: Buffer): StoredTile[] {
  const n = packed.readUInt32LE(0);
  const out: StoredTile[] = new Array(n);
  let at = 4;
  for (let i = 0; i < n; i++) {
    const len = packed.readUInt32LE(at + 16);
    out[i] = {
      level: packed.readDoubleLE(at),
      start: packed.readDoubleLE(at + 8),
      bytes: packed.subarray(at + 20, at + 20 + len),
    };
    at += 20 + len;
  }
  if (at !== packed.length)
    throw new Error(
      `packed tiles are corrupt: ${packed.length - at} bytes left after ${n} tiles; re-upload the group-by`,
    );
  return out;
}

/** A tile upsert (`bytes`) or delete (null) for `mergePacked`. */
export interface PackedWrite {
  readonly level: number;
  readonly start: number;
  readonly bytes: Uint8Array | null;
}

const byAddress = (a: PackedWrite, b: PackedWrite) => a.level - b.level || a.start - b.start;

/**
 * `packTiles(unpackTiles(packed) with writes applied)`, working on the packed bytes directly: unchanged
 * tiles are copied as raw entries, without building an object per stored tile (a commit rewrites every
 * entity it touches, and most of an entity's tiles are unchanged). Later writes of one address win, as if
 * applied one by one. Returns null when no tile is left. `writes` is sorted in place.
 *
 * @example
 * const next = mergePacked(db.getBinaryFast(key), writes); // null → remove the entry
 */
export function mergePacked(packed: Uint8Array | undefined, writes: PackedWrite[]): Buffer | null {
  if (writes.length > 1) writes.sort(byAddress); // stable: equal addresses keep their order
  const view =
    packed === undefined ? null : new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const n = view === null ? 0 : view.getUint32(0, true);
  // Pass 1 sizes the result, pass 2 writes it; both walk the same merge.
  let count = 0;
  let size = 4;
  let out: Buffer | null = null;
  let outAt = 4;
  for (let pass = 0; pass < 2; pass++) {
    if (pass === 1) {
      if (count === 0) return null;
      out = Buffer.allocUnsafe(size);
      out.writeUInt32LE(count, 0);
    }
    let at = 4;
    let i = 0;
    let j = 0;
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
        // An unchanged stored entry: copy it as is.
        const len = 20 + view!.getUint32(at + 16, true);
        if (pass === 0) {
          count++;
          size += len;
        } else {
          out!.set(packed!.subarray(at, at + len), outAt);
          outAt += len;
        }
        at += len;
        i++;
        continue;
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
          out!.set(w!.bytes, outAt + 20);
          outAt += 20 + w!.bytes.length;
        }
      }
      j++;
    }
    if (at !== (packed?.length ?? 4) && n > 0)
      throw new Error(
        `packed tiles are corrupt: ${(packed?.length ?? 0) - at} bytes left after ${n} tiles; re-upload the group-by`,
      );
  }
  return out;
}
