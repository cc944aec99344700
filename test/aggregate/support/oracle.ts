import type { OpName, OpParams, Scalar } from '../../../src/define/types.ts';

/**
 * The naive reference (after Chronon's NaiveAggregator): filters raw events by the DESIGN §1 condition and
 * computes each op straight from its definition, sharing no code with src/aggregate.
 */
export interface OracleEvent {
  readonly ts: number;
  readonly seq: number;
  readonly row: Record<string, Scalar | null>;
}

/** DESIGN §1: `floor((t - W) / h) * h <= ts < t`, or `ts < t` for lifetime (W null). */
export function oracleWindow<E extends OracleEvent>(
  events: readonly E[],
  t: number,
  w: number | null,
  h: number,
): E[] {
  if (w === null) return events.filter((e) => e.ts < t);
  const lo = Math.floor((t - w) / h) * h;
  return events.filter((e) => lo <= e.ts && e.ts < t);
}

function order(a: Scalar, b: Scalar): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

const byTime = (a: OracleEvent, b: OracleEvent): number => (a.ts !== b.ts ? a.ts - b.ts : a.seq - b.seq);

/** Exact ops computed directly; returns undefined for sketch ops (checked separately). */
export function oracleValue(
  op: OpName,
  input: string | null,
  params: OpParams,
  events: readonly OracleEvent[],
): unknown {
  const present =
    input === null ? events : events.filter((e) => e.row[input] !== null && e.row[input] !== undefined);
  const values = present.map((e) => (input === null ? true : (e.row[input] as Scalar)));
  const n = values.length;
  const nums = values as number[];
  const k = params.k ?? 0;
  switch (op) {
    case 'count':
      return n;
    case 'unique_count': {
      const sorted = [...values].sort(order);
      return sorted.filter((v, i) => i === 0 || order(v, sorted[i - 1]) !== 0).length;
    }
    case 'histogram': {
      const out: Record<string, number> = {};
      for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
      return out;
    }
  }
  if (n === 0) return null;
  switch (op) {
    case 'sum':
      return nums.reduce((s, x) => s + x, 0);
    case 'avg':
      return nums.reduce((s, x) => s + x, 0) / n;
    case 'min':
      return [...values].sort(order)[0];
    case 'max':
      return [...values].sort(order)[n - 1];
    case 'variance':
    case 'stddev': {
      const mean = nums.reduce((s, x) => s + x, 0) / n;
      const v = nums.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
      return op === 'variance' ? v : Math.sqrt(v);
    }
    case 'first':
    case 'last':
    case 'first_k':
    case 'last_k': {
      const sorted = [...present].sort(byTime).map((e) => e.row[input as string]);
      if (op === 'first') return sorted[0];
      if (op === 'last') return sorted[n - 1];
      if (op === 'first_k') return sorted.slice(0, k);
      return sorted.reverse().slice(0, k);
    }
    case 'top_k':
      return [...values].sort(order).reverse().slice(0, k);
    case 'bottom_k':
      return [...values].sort(order).slice(0, k);
    default:
      return undefined;
  }
}

/** Exact distinct count and lower-nearest-rank quantiles, for sketch accuracy checks. */
export function exactDistinct(values: readonly Scalar[]): number {
  return new Set(values.map((v) => `${typeof v}:${String(v)}`)).size;
}

export function exactQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))];
}
