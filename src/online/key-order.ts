/**
 * Orders store keys for locality, not for correctness: visiting a big LMDB B-tree's entities in key order
 * makes consecutive gets and puts fall on the same pages, where random order faults in and copies a page
 * per entity. A 1M-event replay drained ~1.3x faster with its commit in key order.
 *
 * An LSD radix sort on the first `KEY_CHARS` (16) UTF-16 code units (each clamped to 255; a shorter key sorts
 * first, as in byte order), stable, so keys equal on that prefix keep their input order (a repeated write stays in order). About 10x cheaper than
 * `Array#sort` with a comparator (~40 vs ~470 ms for 300k ids), which would eat much of the gain. Byte
 * digits that are the same for every key (a common prefix) cost one counting pass and no scatter.
 */
const KEY_CHARS = 16;

/**
 * The indexes of `ids` in ascending order of their first `KEY_CHARS` characters (ties in input order).
 * ASCII keys sort as LMDB orders their UTF-8 bytes; other characters only cost locality.
 *
 * @example
 * for (const i of keyOrder(ids)) db.put(ids[i], values[i]);
 */
export function keyOrder(ids: readonly string[]): Uint32Array {
  const n = ids.length;
  let src = new Uint32Array(n);
  for (let i = 0; i < n; i++) src[i] = i;
  if (n < 2) return src;
  // Digit 0 marks the end of a key, so character c is c + 1 (a NUL still sorts after the end).
  const digits = new Uint16Array(n * KEY_CHARS);
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    const len = Math.min(id.length, KEY_CHARS);
    for (let k = 0; k < len; k++) {
      const c = id.charCodeAt(k);
      digits[k * n + i] = c > 255 ? 256 : c + 1;
    }
  }
  let dst = new Uint32Array(n);
  const count = new Uint32Array(258);
  for (let d = KEY_CHARS - 1; d >= 0; d--) {
    count.fill(0);
    const at = d * n;
    for (let i = 0; i < n; i++) count[digits[at + i]! + 1]!++;
    if (count.includes(n)) continue; // every key has the same character here
    for (let v = 0; v < 257; v++) count[v + 1]! += count[v]!;
    for (let i = 0; i < n; i++) {
      const j = src[i]!;
      dst[count[digits[at + j]!]!++] = j;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}
