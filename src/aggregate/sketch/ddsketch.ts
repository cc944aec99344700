import type { ByteReader, ByteWriter } from '../bytes.ts';

/**
 * A DDSketch-style quantile sketch for approx_percentile. Fixed parameters (part of the stored format):
 *
 * - Relative accuracy α = 0.01, γ = (1 + α) / (1 - α).
 * - A value x ≠ 0 goes to bucket i = ceil(log(|x|) / log(γ)) of the positive or the negative store
 *   (γ^(i-1) < |x| <= γ^i); zeros are counted apart. The sketch also keeps the exact count, min and max.
 * - Quantile q ∈ [0, 1]: rank = q · (count - 1); walk the buckets in value order (negatives from the most
 *   negative, then zeros, then positives) and take the first bucket whose cumulative count exceeds rank,
 *   i.e. the bucket holding the sorted value at index floor(rank) (the lower nearest rank). The answer is
 *   that bucket's representative ±2γ^i / (γ + 1), clamped to [min, max]; it is within relative α of that
 *   sorted value.
 * - Determinism: merge adds bucket counts and takes min/max, all commutative, and queries walk sorted bucket
 *   indices, so the answer depends only on the multiset of values. Encoding writes sorted indices.
 * - Non-finite inputs (NaN, ±Infinity) are rejected with an error: they have no bucket.
 */
export const DD_ALPHA = 0.01;
export const DD_GAMMA = (1 + DD_ALPHA) / (1 - DD_ALPHA);
const INV_LOG_GAMMA = 1 / Math.log(DD_GAMMA);

export interface DdIr {
  count: number;
  zeros: number;
  min: number;
  max: number;
  positive: Buckets;
  negative: Buckets;
}

/**
 * The buckets of one sign: `[index, count, index, count, …]` with strictly ascending indices. Sorted pairs
 * in one number array instead of a Map: merging two sketches is one linear pass that grows the target in
 * place, or a binary search per bucket of a much smaller source (a Map took a hash lookup and store per
 * bucket, and rehashed as it grew: most of a stream worker's sketch time and garbage), and encoding and
 * quantiles walk the buckets in order without sorting them.
 */
export type Buckets = number[];

/**
 * The store of a sketch without values on that side, shared and never mutated (`storeOf` replaces it
 * before the first bump): most inputs (amounts) are all positive, and an empty store per IR row was garbage.
 */
const EMPTY_STORE: Buckets = [];

export function ddInit(): DdIr {
  return { count: 0, zeros: 0, min: Infinity, max: -Infinity, positive: [], negative: EMPTY_STORE };
}

/** `ir`'s store of one sign, made its own (not the shared empty one) so it can be bumped. */
function storeOf(ir: DdIr, negative: boolean): Buckets {
  if (negative) return ir.negative === EMPTY_STORE ? (ir.negative = []) : ir.negative;
  return ir.positive === EMPTY_STORE ? (ir.positive = []) : ir.positive;
}

/** A copy of a store (the shared empty one stays shared). */
const copyStore = (store: Buckets) => (store.length === 0 ? EMPTY_STORE : store.slice());

/** The number of buckets in a store. */
export function ddBucketCount(store: Buckets): number {
  return store.length >> 1;
}

/** The bucket index of |x| (x ≠ 0). */
export function ddIndex(absX: number): number {
  return Math.ceil(Math.log(absX) * INV_LOG_GAMMA);
}

/** Adds `n` to bucket `index`, inserting it in order when absent. */
function bump(store: Buckets, index: number, n: number): void {
  const len = store.length;
  // Appending is the common case for a new bucket of a growing store; a repeat of the largest is common too.
  if (len === 0 || store[len - 2] < index) {
    store.push(index, n);
    return;
  }
  const at = lowerBound(store, 0, len, index);
  if (store[at] === index) {
    store[at + 1] += n;
    return;
  }
  insertAt(store, at, index, n);
}

/** Inserts bucket `index` with count `n` at position `at` (even), moving the buckets from there up. */
function insertAt(store: Buckets, at: number, index: number, n: number): void {
  const len = store.length;
  // splice moves a long tail with a native memmove (2000 buckets inserted in random order: ~5x faster than
  // the loop), but allocates the array of removed elements: small stores (fresh tiles) shift in a loop.
  if (len - at > 64) {
    store.splice(at, 0, index, n);
    return;
  }
  store.push(0, 0);
  for (let k = len - 1; k >= at; k--) store[k + 2] = store[k];
  store[at] = index;
  store[at + 1] = n;
}

/**
 * Adds every bucket of `b` into `a` (b unchanged). A source much smaller than the target (a tile merged into
 * a window accumulator) is looked up bucket by bucket: walking the whole target would cost its size per merge.
 */
function mergeStore(a: Buckets, b: Buckets): void {
  const pairsA = a.length >> 1;
  const pairsB = b.length >> 1;
  if (pairsB * (32 - Math.clz32(pairsA)) < pairsA) mergeSparse(a, b);
  else mergeLinear(a, b);
}

/** The position (even) of the first bucket of `store[lo, hi)` whose index is >= `index`; `hi` if none. */
function lowerBound(store: Buckets, lo: number, hi: number, index: number): number {
  let l = lo >> 1;
  let h = hi >> 1;
  while (l < h) {
    const mid = (l + h) >>> 1;
    if (store[2 * mid] < index) l = mid + 1;
    else h = mid;
  }
  return 2 * l;
}

/** Binary-searches each bucket of `b` in `a`: adds the found ones in place and inserts the new ones. */
function mergeSparse(a: Buckets, b: Buckets): void {
  for (let j = 0, lo = 0; j < b.length; j += 2) {
    lo = lowerBound(a, lo, a.length, b[j]);
    if (lo < a.length && a[lo] === b[j]) a[lo + 1] += b[j + 1];
    else insertAt(a, lo, b[j], b[j + 1]);
  }
}

/** Adds every bucket of `b` into `a` in one walk of both: counts the new indices, grows `a` once, merges from the end. */
function mergeLinear(a: Buckets, b: Buckets): void {
  const na = a.length;
  const nb = b.length;
  let added = 0;
  for (let i = 0, j = 0; j < nb; ) {
    if (i >= na || b[j] < a[i]) {
      added += 2;
      j += 2;
    } else if (b[j] === a[i]) {
      i += 2;
      j += 2;
    } else i += 2;
  }
  if (added === 0) {
    for (let i = 0, j = 0; j < nb; i += 2) {
      if (a[i] === b[j]) {
        a[i + 1] += b[j + 1];
        j += 2;
      }
    }
    return;
  }
  for (let k = 0; k < added; k++) a.push(0);
  // Writing from the end never overwrites an `a` bucket not yet read: w >= i + 2 while b has buckets left.
  let i = na - 2;
  let j = nb - 2;
  let w = na + added - 2;
  while (j >= 0) {
    if (i >= 0 && a[i] > b[j]) {
      a[w] = a[i];
      a[w + 1] = a[i + 1];
      i -= 2;
    } else if (i >= 0 && a[i] === b[j]) {
      a[w] = a[i];
      a[w + 1] = a[i + 1] + b[j + 1];
      i -= 2;
      j -= 2;
    } else {
      a[w] = b[j];
      a[w + 1] = b[j + 1];
      j -= 2;
    }
    w -= 2;
  }
}

export function ddAdd(ir: DdIr, x: number): DdIr {
  if (!Number.isFinite(x)) {
    throw new RangeError(
      `approx_percentile: input ${x} is not a finite number; filter it out with a source filter or a derived column`,
    );
  }
  ir.count++;
  if (x < ir.min) ir.min = x;
  if (x > ir.max) ir.max = x;
  if (x > 0) bump(storeOf(ir, false), ddIndex(x), 1);
  else if (x < 0) bump(storeOf(ir, true), ddIndex(-x), 1);
  else ir.zeros++;
  return ir;
}

export function ddMerge(a: DdIr, b: DdIr): DdIr {
  if (b.count === 0) return a;
  a.count += b.count;
  a.zeros += b.zeros;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  if (b.positive.length > 0) mergeStore(storeOf(a, false), b.positive);
  if (b.negative.length > 0) mergeStore(storeOf(a, true), b.negative);
  return a;
}

export function ddClone(ir: DdIr): DdIr {
  return { ...ir, positive: copyStore(ir.positive), negative: copyStore(ir.negative) };
}

const representative = (i: number): number => (2 * DD_GAMMA ** i) / (DD_GAMMA + 1);

/** One estimate per requested quantile, in the order requested; null when the sketch is empty. */
export function ddQuantiles(ir: DdIr, qs: readonly number[]): number[] | null {
  if (ir.count === 0) return null;
  const neg = ir.negative;
  const pos = ir.positive;
  return qs.map((q) => {
    const rank = q * (ir.count - 1);
    let cum = 0;
    let value: number | undefined;
    // Most negative first: the largest index of the negative store.
    for (let k = neg.length - 2; k >= 0; k -= 2) {
      cum += neg[k + 1];
      if (cum > rank) {
        value = -representative(neg[k]);
        break;
      }
    }
    if (value === undefined) {
      cum += ir.zeros;
      if (cum > rank) value = 0;
    }
    if (value === undefined) {
      for (let k = 0; k < pos.length; k += 2) {
        cum += pos[k + 1];
        if (cum > rank) {
          value = representative(pos[k]);
          break;
        }
      }
    }
    return Math.min(ir.max, Math.max(ir.min, value ?? ir.max));
  });
}

function encodeStore(store: Buckets, out: ByteWriter): void {
  const n = store.length;
  out.writeVarUint(n >> 1);
  for (let k = 0; k < n; k += 2) {
    if (k === 0) out.writeVarInt(store[0]);
    else out.writeVarUint(store[k] - store[k - 2]);
    out.writeVarUint(store[k + 1]);
  }
}

function decodeStore(input: ByteReader): Buckets {
  const n = input.readVarUint();
  if (n === 0) return EMPTY_STORE;
  const store: Buckets = [];
  let index = 0;
  for (let k = 0; k < n; k++) {
    index = k === 0 ? input.readVarInt() : index + input.readVarUint();
    const count = input.readVarUint();
    // A repeated index (never written, so corrupt) keeps the last count, as a Map did. Compared as computed
    // rather than by a zero diff: above 2^53 a nonzero diff can round back to the same index.
    if (k > 0 && index === store[store.length - 2]) store[store.length - 1] = count;
    else store.push(index, count);
  }
  return store;
}

export function ddEncode(ir: DdIr, out: ByteWriter): void {
  out.writeVarUint(ir.count);
  if (ir.count === 0) return;
  out.writeVarUint(ir.zeros);
  out.writeNumber(ir.min);
  out.writeNumber(ir.max);
  encodeStore(ir.positive, out);
  encodeStore(ir.negative, out);
}

export function ddDecode(input: ByteReader): DdIr {
  const count = input.readVarUint();
  if (count === 0) return ddInit();
  const zeros = input.readVarUint();
  const min = input.readNumber();
  const max = input.readNumber();
  const positive = decodeStore(input);
  const negative = decodeStore(input);
  return { count, zeros, min, max, positive, negative };
}
