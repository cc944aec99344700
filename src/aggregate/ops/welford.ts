import type { OpName } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import type { ByteReader, ByteWriter } from '../bytes.ts';
import { numeric } from './accepts.ts';

/**
 * Welford's running mean and sum of squared deviations (`m2`), merged with Chan et al.'s parallel formula.
 * Chosen over sum/sum-of-squares for numerical stability: large means do not cancel the variance away.
 * The one implementation behind variance and stddev (population: m2 / n); they differ only in finalize.
 *
 * Range: `m2` is a float64 sum of squared deviations, so deviations from the mean beyond about 1e154 make
 * it (and variance and stddev) Infinity, never 0 or NaN whatever the order (the mean stays finite), and deviations below about 1e-154 lose precision (below about
 * 1e-162 they square to 0), even where stddev itself would be representable ([1e300, -1e300]: 1e300;
 * [1e-300, 0]: 5e-301). Keeping them would need a scale exponent in the state, i.e. a new stored format
 * and a rescaling whose rounding depends on merge order; the README documents the range instead.
 */
export interface WelfordIr {
  n: number;
  mean: number;
  m2: number;
}

function init(): WelfordIr {
  return { n: 0, mean: 0, m2: 0 };
}

function reset(ir: WelfordIr): WelfordIr {
  ir.n = 0;
  ir.mean = 0;
  ir.m2 = 0;
  return ir;
}

function update(ir: WelfordIr, x: number): WelfordIr {
  ir.n += 1;
  const mean = ir.mean;
  const delta = x - mean;
  ir.mean = mean + delta / ir.n;
  ir.m2 += delta * (x - ir.mean);
  if (ir.m2 - ir.m2 !== 0) pastRange(ir, x, mean);
  return ir;
}

/**
 * After an update that left m2 non-finite: when `x - mean` itself overflowed, the mean became infinite and
 * m2 -Infinity or NaN (variance 0 or NaN, and another value from merged tiles). The mean of finite values
 * is finite, so it is recomputed without the difference, and m2 is past the range: Infinity.
 */
function pastRange(ir: WelfordIr, x: number, mean: number): void {
  if (ir.mean - ir.mean === 0 || x - x !== 0 || mean - mean !== 0) return;
  ir.mean = mean + (x / ir.n - mean / ir.n);
  ir.m2 = Infinity;
}

function merge(a: WelfordIr, b: WelfordIr): WelfordIr {
  return mergeParts(a, b.n, b.mean, b.m2);
}

/** Merges an IR given as its fields (n, mean, m2) into `a`. */
function mergeParts(a: WelfordIr, bn: number, bMean: number, bM2: number): WelfordIr {
  if (bn === 0) return a;
  if (a.n === 0) {
    a.n = bn;
    a.mean = bMean;
    a.m2 = bM2;
    return a;
  }
  const n = a.n + bn;
  const delta = bMean - a.mean;
  const step = (delta * bn) / n;
  if (step - step !== 0 && a.mean - a.mean === 0 && bMean - bMean === 0) {
    // The means are too far apart for a float difference, or delta * bn overflows: as in `update`, keep
    // the mean finite (an infinite one would make a later merge NaN).
    a.mean = a.mean * (a.n / n) + bMean * (bn / n);
    a.m2 = Infinity;
    a.n = n;
    return a;
  }
  a.mean += step;
  a.m2 += bM2 + (delta * delta * a.n * bn) / n;
  a.n = n;
  return a;
}

/** Population variance, or null when empty; clamped at 0 against rounding. */
export function welfordVariance(ir: WelfordIr): number | null {
  return ir.n === 0 ? null : Math.max(0, ir.m2 / ir.n);
}

// Stored format (unchanged since variance and stddev were separate ops): varuint n, then mean and m2 if n > 0.
function encode(ir: WelfordIr, out: ByteWriter): void {
  out.writeVarUint(ir.n);
  if (ir.n === 0) return;
  out.writeNumber(ir.mean);
  out.writeNumber(ir.m2);
}

function decode(input: ByteReader): WelfordIr {
  const n = input.readVarUint();
  if (n === 0) return init();
  return { n, mean: input.readNumber(), m2: input.readNumber() };
}

/** `merge(a, decode(input))` without the decoded object. */
function mergeDecoded(a: WelfordIr, input: ByteReader): WelfordIr {
  const n = input.readVarUint();
  if (n === 0) return a;
  const mean = input.readNumber();
  return mergeParts(a, n, mean, input.readNumber());
}

/**
 * A Welford op and its spec: `result` maps the population variance (never null) to the op's value, e.g.
 * `Math.sqrt` for stddev. An empty window gives null.
 */
export function welfordOp(
  name: OpName,
  result: (variance: number) => number,
): { op: AggOp<number, WelfordIr, number | null>; spec: OpSpec } {
  const op: AggOp<number, WelfordIr, number | null> = {
    name,
    init,
    update: (ir, value) => update(ir, value),
    merge,
    finalize: (ir) => {
      const v = welfordVariance(ir);
      return v === null ? null : result(v);
    },
    clone: (ir) => ({ n: ir.n, mean: ir.mean, m2: ir.m2 }),
    encode,
    decode,
    mergeDecoded,
    reset,
    updatePerTile: true,
  };
  const spec: OpSpec = {
    name,
    accepts: numeric,
    outputType: () => 'float',
    emptyValue: () => null,
    needs: 'none',
    factory: () => op,
  };
  return { op, spec };
}
