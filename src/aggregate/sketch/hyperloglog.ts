import type { Scalar } from '../../define/types.ts';
import type { ByteReader, ByteWriter } from '../bytes.ts';
import { hashOut, hashScalar64 } from './hash64.ts';

/**
 * HyperLogLog for approx_unique_count. Fixed parameters (part of the stored format):
 *
 * - p = 14, m = 2^14 = 16384 registers; standard error ≈ 1.04 / sqrt(m) ≈ 0.81%.
 * - Hash: `hash64.ts` (two MurmurHash3_x86_32 seeds over the value's canonical UTF-8 form).
 *   Register index = top 14 bits of the 64-bit hash; rank = 1 + leading zeros of the remaining 50 bits
 *   (1..51).
 * - Estimate: raw `E = α_m · m² / Σ 2^-M[j]` with `α_m = 0.7213 / (1 + 1.079/m)`; if `E <= 2.5m` and some
 *   register is 0, linear counting `m · ln(m / zeros)`. No large-range correction (a 64-bit hash does not
 *   saturate). The result is `Math.round(E)`.
 * - Determinism: merge is register-wise max (commutative, associative, idempotent), and the estimate sums
 *   `count[r] · 2^-r` over a histogram of register values in rank order, so it is bit-identical whatever the
 *   merge order or in-memory representation.
 *
 * Small sketches are sparse (the non-zero registers as `index * 64 + rank` numbers, sorted by index) and
 * turn dense (a Uint8Array) past SPARSE_MAX registers, so a tile with a handful of values costs bytes, not
 * 16 KiB. A sorted array of small integers, rather than a Map: no hash table per tile (most hold a few
 * values), and encoding needs no sort.
 */
export const HLL_P = 14;
export const HLL_M = 1 << HLL_P;
const SPARSE_MAX = 512;
/** Above this many non-zero registers the dense encoding is smaller than (delta varint, rank) pairs. */
const SPARSE_ENCODE_MAX = 5000;
const MAX_RANK = 64 - HLL_P + 1;

export interface HllIr {
  /** Non-zero registers as `index * RANK_SLOTS + rank`, ascending (by index); null when dense. */
  sparse: number[] | null;
  dense: Uint8Array | null;
}

/** Ranks are 1..MAX_RANK (< 64), so `index * RANK_SLOTS + rank` packs a register in one small integer. */
const RANK_SLOTS = 64;

export function hllInit(): HllIr {
  return { sparse: [], dense: null };
}

function setRegister(ir: HllIr, index: number, rank: number): void {
  if (ir.dense !== null) {
    if (rank > ir.dense[index]) ir.dense[index] = rank;
    return;
  }
  const sparse = ir.sparse as number[];
  const packed = index * RANK_SLOTS + rank;
  // The first entry with register >= index (binary search; appends are common, so try the end first).
  let lo = 0;
  let hi = sparse.length;
  if (hi > 0 && sparse[hi - 1] < index * RANK_SLOTS) lo = hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sparse[mid] < index * RANK_SLOTS) lo = mid + 1;
    else hi = mid;
  }
  if (lo < sparse.length && sparse[lo] - (sparse[lo] % RANK_SLOTS) === index * RANK_SLOTS) {
    if (sparse[lo] < packed) sparse[lo] = packed;
    return;
  }
  if (sparse.length >= SPARSE_MAX) {
    const dense = new Uint8Array(HLL_M);
    for (const p of sparse) dense[Math.floor(p / RANK_SLOTS)] = p % RANK_SLOTS;
    dense[index] = rank;
    ir.dense = dense;
    ir.sparse = null;
    return;
  }
  for (let i = sparse.length; i > lo; i--) sparse[i] = sparse[i - 1];
  sparse[lo] = packed;
}

/** One-entry memo: a TileSet adds the same value at every level in a row, so hash it once. */
let memoValue: Scalar | undefined;
let memoIndex = 0;
let memoRank = 0;

export function hllAdd(ir: HllIr, value: Scalar): HllIr {
  if (!Object.is(value, memoValue)) {
    hashScalar64(value);
    const { hi, lo } = hashOut;
    memoIndex = hi >>> (32 - HLL_P);
    const rest = hi & ((1 << (32 - HLL_P)) - 1); // the 18 low bits of hi, followed by the 32 bits of lo
    memoRank =
      rest !== 0 ? Math.clz32(rest) - HLL_P + 1 : lo !== 0 ? 32 - HLL_P + Math.clz32(lo) + 1 : MAX_RANK;
    memoValue = value;
  }
  setRegister(ir, memoIndex, memoRank);
  return ir;
}

export function hllMerge(a: HllIr, b: HllIr): HllIr {
  if (b.dense !== null) {
    if (a.dense === null) {
      const dense = b.dense.slice();
      for (const p of a.sparse as number[]) {
        const i = Math.floor(p / RANK_SLOTS);
        if (p % RANK_SLOTS > dense[i]) dense[i] = p % RANK_SLOTS;
      }
      return { sparse: null, dense };
    }
    const ad = a.dense;
    const bd = b.dense;
    for (let i = 0; i < HLL_M; i++) if (bd[i] > ad[i]) ad[i] = bd[i];
    return a;
  }
  for (const p of b.sparse as number[]) setRegister(a, Math.floor(p / RANK_SLOTS), p % RANK_SLOTS);
  return a;
}

export function hllClone(ir: HllIr): HllIr {
  return ir.dense !== null
    ? { sparse: null, dense: ir.dense.slice() }
    : { sparse: (ir.sparse as number[]).slice(), dense: null };
}

/** The documented estimate (see the file comment). */
export function hllEstimate(ir: HllIr): number {
  const counts = new Float64Array(MAX_RANK + 1);
  if (ir.dense !== null) for (let i = 0; i < HLL_M; i++) counts[ir.dense[i]]++;
  else {
    const sparse = ir.sparse as number[];
    counts[0] = HLL_M - sparse.length;
    for (const p of sparse) counts[p % RANK_SLOTS]++;
  }
  let harmonic = 0;
  for (let r = 0; r <= MAX_RANK; r++) harmonic += counts[r] * 2 ** -r;
  const alpha = 0.7213 / (1 + 1.079 / HLL_M);
  let estimate = (alpha * HLL_M * HLL_M) / harmonic;
  const zeros = counts[0];
  if (estimate <= 2.5 * HLL_M && zeros > 0) estimate = HLL_M * Math.log(HLL_M / zeros);
  return Math.round(estimate);
}

/** Whether no value was added. */
export function hllIsEmpty(ir: HllIr): boolean {
  return ir.dense === null && (ir.sparse as number[]).length === 0;
}

/** Format byte 0: sparse (count, then ascending (index delta, rank) pairs); 1: dense (m rank bytes). */
export function hllEncode(ir: HllIr, out: ByteWriter): void {
  if (ir.dense === null) {
    // Already sorted by register index.
    const sparse = ir.sparse as number[];
    out.writeU8(0);
    out.writeVarUint(sparse.length);
    let prev = 0;
    for (let k = 0; k < sparse.length; k++) {
      const i = Math.floor(sparse[k] / RANK_SLOTS);
      out.writeVarUint(i - prev);
      prev = i;
      out.writeU8(sparse[k] % RANK_SLOTS);
    }
    return;
  }
  const dense = ir.dense;
  const entries = denseEntries;
  let n = 0;
  for (let i = 0; i < HLL_M && n <= SPARSE_ENCODE_MAX; i++) if (dense[i] !== 0) entries[n++] = i;
  if (n > SPARSE_ENCODE_MAX) {
    out.writeU8(1);
    out.writeBytes(dense);
    return;
  }
  out.writeU8(0);
  out.writeVarUint(n);
  let prev = 0;
  for (let k = 0; k < n; k++) {
    const i = entries[k];
    out.writeVarUint(i - prev);
    prev = i;
    out.writeU8(dense[i]);
  }
}

/** Non-zero registers of a dense sketch being encoded (reused: encoding is synchronous and never nests). */
const denseEntries = new Int32Array(SPARSE_ENCODE_MAX + 1);

export function hllDecode(input: ByteReader): HllIr {
  const format = input.readU8();
  if (format === 1) return { sparse: null, dense: input.readBytes(HLL_M).slice() };
  if (format !== 0)
    throw new RangeError(`HyperLogLog: unknown encoding ${format}; the tile bytes are corrupt`);
  const n = input.readVarUint();
  const ir = hllInit();
  let index = 0;
  for (let k = 0; k < n; k++) {
    index += input.readVarUint();
    setRegister(ir, index, input.readU8());
  }
  return ir;
}
