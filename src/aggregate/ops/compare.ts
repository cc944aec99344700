import type { Scalar } from '../../define/types.ts';

/**
 * Total order on column values used by min/max/top_k/bottom_k: numbers numerically, strings by UTF-16 code
 * units (JS `<`, the same in every process, so offline and online agree), false < true. A column has one
 * type, so mixed types only meet in misuse; they are ordered number < string < boolean to stay total.
 *
 * Numbers as in DuckDB and Postgres: NaN (a float column can hold it from Parquet or CSV) is greater than
 * every number, Infinity included, and equal to NaN; -0 equals 0. Without a total order (`<` is false both
 * ways for NaN) min/max/top_k kept whichever value came first, so results depended on event order and on
 * how events were batched into tiles. Equal values that look different (0 and -0) are the one order
 * dependence left: ops keep the first or the last of them consistently (bounded-sorted.ts), so merges and
 * one-by-one updates still agree.
 */
export function compareScalar(a: Scalar, b: Scalar): number {
  const ta = typeof a;
  const tb = typeof b;
  if (ta !== tb) return typeRank(ta) - typeRank(tb);
  if (a < b) return -1;
  if (a > b) return 1;
  // Equal, or a NaN involved (only numbers are ever unordered by `<`).
  if (ta !== 'number') return 0;
  const na = a !== a;
  return na === (b !== b) ? 0 : na ? 1 : -1;
}

function typeRank(t: string): number {
  return t === 'number' ? 0 : t === 'string' ? 1 : 2;
}
