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
