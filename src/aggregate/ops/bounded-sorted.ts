/**
 * A sorted array (ascending by `cmp`) holding at most `k` items: the k largest (`keep = 'largest'`) or the
 * k smallest. Shared by first_k/last_k (ordered by time) and top_k/bottom_k (ordered by value).
 * Items are treated as immutable, so merged arrays may share them.
 *
 * Ties (items `cmp` calls equal, e.g. 0 and -0, or two events with the same (ts, seq)) are kept in insertion
 * order, and at the bound the later ones win for `largest`, the earlier ones for `smallest`, in both
 * `boundedInsert` and `boundedMerge`: merging the array of a prefix of a sequence with that of the rest
 * gives exactly (the same items, in the same order) the array of inserting the whole sequence one by one,
 * which tiles' batch delta relies on (tiles.ts invariant 13).
 */
export type Keep = 'largest' | 'smallest';

/** Inserts `item` keeping the bound; mutates `arr`. */
export function boundedInsert<T>(
  arr: T[],
  item: T,
  k: number,
  cmp: (a: T, b: T) => number,
  keep: Keep,
): void {
  if (arr.length >= k) {
    if (keep === 'largest') {
      // A tie with the smallest kept replaces it (later wins), as `boundedMerge` keeps the later of ties.
      if (cmp(item, arr[0]) < 0) return;
      arr.shift();
    } else {
      // A tie with the largest kept is dropped (earlier wins), as in `boundedMerge`.
      if (cmp(item, arr[arr.length - 1]) >= 0) return;
      arr.pop();
    }
  }
  // Upper-bound binary search; in-time-order streams append at the end, the common case.
  let lo = 0;
  let hi = arr.length;
  if (hi > 0 && cmp(item, arr[hi - 1]) >= 0) lo = hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(arr[mid], item) <= 0) lo = mid + 1;
    else hi = mid;
  }
  // Shifted by hand: `splice` returns a new (empty) array per call, an allocation per event.
  for (let i = arr.length; i > lo; i--) arr[i] = arr[i - 1];
  arr[lo] = item;
}

/**
 * Merges two bounded sorted arrays into a new one with the same bound; never mutates either input. Ties put
 * `a`'s items first (`a` holds the earlier items when merging a prefix with the rest).
 */
export function boundedMerge<T>(
  a: readonly T[],
  b: readonly T[],
  k: number,
  cmp: (x: T, y: T) => number,
  keep: Keep,
): T[] {
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && cmp(a[i], b[j]) <= 0)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  if (out.length <= k) return out;
  return keep === 'largest' ? out.slice(out.length - k) : out.slice(0, k);
}

/** Validates the `k` parameter of a *_k op. */
export function requireK(op: string, k: number | undefined): number {
  if (k === undefined || !Number.isSafeInteger(k) || k < 1) {
    throw new Error(
      `${op}: parameter k must be a positive integer (got ${String(k)}); e.g. ${op}('amount', { k: 5 })`,
    );
  }
  return k;
}
