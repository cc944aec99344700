import type { ByteReader, ByteWriter } from '../bytes.ts';

/**
 * Sum state shared by sum and avg: a Neumaier-compensated float sum plus the count. Compensation keeps
 * float sums within ~1 ulp whatever the tile merge order, so offline (one pass) and online (merged tiles)
 * agree far inside DESIGN's 1e-9 relative bound; integer sums below 2^53 are exact and `c` stays 0.
 */
export interface SumIr {
  /** Running sum. */
  s: number;
  /** Lost low-order bits of `s`. */
  c: number;
  /** Number of values. */
  n: number;
}

export function sumInit(): SumIr {
  return { s: 0, c: 0, n: 0 };
}

export function sumReset(ir: SumIr): SumIr {
  ir.s = 0;
  ir.c = 0;
  ir.n = 0;
  return ir;
}

/**
 * Adds `x` to `s + c`. When finite `s` and `x` overflow (`s + x` is ±Infinity), `x` goes to `c` instead, so
 * `s` stays finite, `s + c` stays the sum and a later opposite value can bring it back into range whatever
 * the order ([MAX, MAX, -MAX] in any order sums to MAX); Neumaier's term would be Infinity - Infinity (NaN).
 * A non-finite `x` (only from Parquet/CSV values) makes `s` what a plain float sum gives (±Infinity, NaN).
 */
function addCompensated(ir: SumIr, x: number): void {
  const t = ir.s + x;
  if (t - t !== 0) {
    // t is ±Infinity or NaN: rare, so off the hot path's arithmetic.
    if (ir.s - ir.s === 0 && x - x === 0) ir.c += x;
    else ir.s = t;
    return;
  }
  if (Math.abs(ir.s) >= Math.abs(x)) ir.c += ir.s - t + x;
  else ir.c += x - t + ir.s;
  ir.s = t;
}

export function sumUpdate(ir: SumIr, x: number): SumIr {
  addCompensated(ir, x);
  ir.n += 1;
  return ir;
}

export function sumMerge(a: SumIr, b: SumIr): SumIr {
  return mergeParts(a, b.s, b.c, b.n);
}

function mergeParts(a: SumIr, s: number, c: number, n: number): SumIr {
  addCompensated(a, s);
  a.c += c;
  a.n += n;
  return a;
}

/**
 * The sum: ±Infinity beyond the float range (`c` overflows too only when partial sums pass about ±2 * MAX,
 * and then the sum is ±Infinity even if later values would have brought it back).
 */
export function sumValue(ir: SumIr): number {
  return ir.s + ir.c;
}

export function sumClone(ir: SumIr): SumIr {
  return { s: ir.s, c: ir.c, n: ir.n };
}

export function sumEncode(ir: SumIr, out: ByteWriter): void {
  out.writeVarUint(ir.n);
  out.writeNumber(ir.s);
  out.writeNumber(ir.c);
}

export function sumDecode(input: ByteReader): SumIr {
  const n = input.readVarUint();
  const s = input.readNumber();
  // Fields in `sumInit`'s order: one object shape for every IR keeps `sumUpdate`'s property accesses monomorphic.
  return { s, c: input.readNumber(), n };
}

/** `sumMerge(a, sumDecode(input))` without the decoded object. */
export function sumMergeDecoded(a: SumIr, input: ByteReader): SumIr {
  const n = input.readVarUint();
  const s = input.readNumber();
  return mergeParts(a, s, input.readNumber(), n);
}
