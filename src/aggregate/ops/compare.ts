import type { Scalar } from '../../define/types.ts';

/**
 * Total order on column values used by min/max/top_k/bottom_k: numbers numerically, strings by UTF-16 code
 * units (JS `<`, the same in every process, so offline and online agree), false < true. A column has one
 * type, so mixed types only meet in misuse; they are ordered number < string < boolean to stay total.
 */
export function compareScalar(a: Scalar, b: Scalar): number {
  const ta = typeof a;
  const tb = typeof b;
  if (ta !== tb) return typeRank(ta) - typeRank(tb);
  return a < b ? -1 : a > b ? 1 : 0;
}

function typeRank(t: string): number {
  return t === 'number' ? 0 : t === 'string' ? 1 : 2;
}
