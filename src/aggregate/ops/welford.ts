import type { OpName } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import type { ByteReader, ByteWriter } from '../bytes.ts';
import { numeric } from './accepts.ts';

/**
 * Welford's running mean and sum of squared deviations (`m2`), merged with Chan et al.'s parallel formula.
 * Chosen over sum/sum-of-squares for numerical stability: large means do not cancel the variance away.
 * The one implementation behind variance and stddev (population: m2 / n); they differ only in finalize.
 */
export interface WelfordIr {
  n: number;
  mean: number;
  m2: number;
}

function init(): WelfordIr {
  return { n: 0, mean: 0, m2: 0 };
}

function update(ir: WelfordIr, x: number): WelfordIr {
  ir.n += 1;
  const delta = x - ir.mean;
  ir.mean += delta / ir.n;
  ir.m2 += delta * (x - ir.mean);
  return ir;
}

function merge(a: WelfordIr, b: WelfordIr): WelfordIr {
  if (b.n === 0) return a;
  if (a.n === 0) {
    a.n = b.n;
    a.mean = b.mean;
    a.m2 = b.m2;
    return a;
  }
  const n = a.n + b.n;
  const delta = b.mean - a.mean;
  a.mean += (delta * b.n) / n;
  a.m2 += b.m2 + (delta * delta * a.n * b.n) / n;
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
