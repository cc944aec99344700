import type { StoredTile } from './store.ts';
import type { TileColumns } from './tile-pack.ts';

/**
 * Each stored entity records the time from which its tiles answer exactly (tiles.ts invariant 9), as a
 * marker entry next to its tiles: level `EXACT_FROM_LEVEL` (-1, below every real level, so stores that
 * sort by `(level, start)` return it first), start 0, bytes the time as a little-endian f64. It lives in
 * the entity's LMDB value or Redis hash, so it is written in the same atomic commit as the tiles it
 * describes. No marker means nothing was ever evicted: every time is exact. The marker also outlives the
 * entity's last tile, so a key whose tiles all expired is not mistaken for one that never had events.
 */
export const EXACT_FROM_LEVEL = -1;

/**
 * The marker's stored bytes for time `t`.
 *
 * @example
 * writes.push({ groupBy, key, level: EXACT_FROM_LEVEL, start: 0, bytes: encodeExactFrom(t) });
 */
export function encodeExactFrom(t: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, t, true);
  return bytes;
}

/**
 * The exact-from time in an entity's stored tiles (sorted by level, so the marker is first), or -Infinity.
 *
 * @example
 * const from = readExactFrom(stored); // a fetch at t < from is not exact
 */
export function readExactFrom(stored: readonly StoredTile[]): number {
  const first = stored[0];
  return first === undefined || first.level !== EXACT_FROM_LEVEL ? -Infinity : decodeExactFrom(first.bytes);
}

/** `readExactFrom` of an entity read as columns (tile-pack.ts). */
export function columnsExactFrom(columns: TileColumns): number {
  return columns.length === 0 || columns.level[0] !== EXACT_FROM_LEVEL
    ? -Infinity
    : decodeExactFrom(columns.bytes(0));
}

function decodeExactFrom(bytes: Uint8Array): number {
  if (bytes.length !== 8)
    throw new Error(
      `stored exact-from marker has ${bytes.length} bytes instead of 8; the entity's store entry is corrupt, re-upload its group-by`,
    );
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, true);
}

/** Number of leading marker entries in sorted stored tiles (0 or 1): real tiles start at this index. */
export function markerCount(stored: readonly StoredTile[] | TileColumns): number {
  if (stored.length === 0) return 0;
  const level = Array.isArray(stored)
    ? (stored as readonly StoredTile[])[0]!.level
    : (stored as TileColumns).level[0];
  return level === EXACT_FROM_LEVEL ? 1 : 0;
}
