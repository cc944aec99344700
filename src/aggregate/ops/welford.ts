import type { ByteReader, ByteWriter } from '../bytes.ts';

/**
 * Welford's running mean and sum of squared deviations (`m2`), merged with Chan et al.'s parallel formula.
 * Chosen over sum/sum-of-squares for numerical stability: large means do not cancel the variance away.
 * Shared by variance and stddev (population: m2 / n).
 */
export interface WelfordIr {
  n: number;
  mean: number;
  m2: number;
}

export function welfordInit(): WelfordIr {
  return { n: 0, mean: 0, m2: 0 };
}

export function welfordUpdate(ir: WelfordIr, x: number): WelfordIr {
  ir.n += 1;
  const delta = x - ir.mean;
  ir.mean += delta / ir.n;
  ir.m2 += delta * (x - ir.mean);
  return ir;
}

export function welfordMerge(a: WelfordIr, b: WelfordIr): WelfordIr {
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

export function welfordClone(ir: WelfordIr): WelfordIr {
  return { n: ir.n, mean: ir.mean, m2: ir.m2 };
}

export function welfordEncode(ir: WelfordIr, out: ByteWriter): void {
  out.writeVarUint(ir.n);
  if (ir.n === 0) return;
  out.writeNumber(ir.mean);
  out.writeNumber(ir.m2);
}

export function welfordDecode(input: ByteReader): WelfordIr {
  const n = input.readVarUint();
  if (n === 0) return welfordInit();
  return { n, mean: input.readNumber(), m2: input.readNumber() };
}
