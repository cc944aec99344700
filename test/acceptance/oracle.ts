/**
 * An independent, deliberately naive oracle for DESIGN.md §1, written from the contract alone: for every
 * query it filters the raw events by key and window and computes each op from scratch. No tiles, no
 * merging, nothing shared with src/.
 */

export type Value = string | number | null;

/** One event as the contract sees it: key, epoch-ms time, source order, and its value columns. */
export interface OEvent {
  readonly key: string;
  readonly ts: number;
  /** Position in source order (ties in ts: later in source order counts as later). */
  readonly seq: number;
  readonly values: Readonly<Record<string, Value>>;
}

export interface OWindow {
  /** Label as written ('1h', 'lifetime', ...). */
  readonly label: string;
  /** null for lifetime. */
  readonly sizeMs: number | null;
  readonly hopMs: number;
}

const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function durationMs(text: string): number {
  const m = /^(\d+)([smhdw])$/.exec(text);
  if (!m) throw new Error(`oracle: bad duration ${text}`);
  return Number(m[1]) * UNIT[m[2]!]!;
}

/** DESIGN §1 default hop: the largest of 1d, 1h, 5m, 1m, 1s for which W >= 12*h. */
export function defaultHop(sizeMs: number): number {
  for (const h of [86_400_000, 3_600_000, 300_000, 60_000, 1000]) if (sizeMs >= 12 * h) return h;
  return 1000;
}

export function oWindow(spec: string | { size: string; hop: string }): OWindow {
  if (spec === 'lifetime') return { label: 'lifetime', sizeMs: null, hopMs: 86_400_000 };
  if (typeof spec === 'string') {
    const size = durationMs(spec);
    return { label: spec, sizeMs: size, hopMs: defaultHop(size) };
  }
  return { label: spec.size, sizeMs: durationMs(spec.size), hopMs: durationMs(spec.hop) };
}

/** The events of a window for a query at t: floor((t - W)/h)*h <= ts < t (lifetime: ts < t). */
export function inWindow(events: readonly OEvent[], w: OWindow, t: number): OEvent[] {
  const start = w.sizeMs === null ? -Infinity : Math.floor((t - w.sizeMs) / w.hopMs) * w.hopMs;
  return events.filter((e) => e.ts >= start && e.ts < t);
}

export interface OAgg {
  readonly op: string;
  readonly input: string | null;
  readonly k?: number;
  readonly percentiles?: readonly number[];
}

const byTime = (a: OEvent, b: OEvent) => a.ts - b.ts || a.seq - b.seq;
const cmp = (a: Value, b: Value) => (a! < b! ? -1 : a! > b! ? 1 : 0);

/**
 * The exact value of one op over the window's events. approx_unique_count returns the exact distinct count
 * (null when empty: DESIGN lists only count and unique_count as 0) and approx_percentile the sorted values: callers check closeness, not equality.
 */
export function evaluate(agg: OAgg, events: readonly OEvent[]): unknown {
  if (agg.input === null) {
    if (agg.op !== 'count') throw new Error(`oracle: ${agg.op} needs an input`);
    return events.length;
  }
  const input = agg.input;
  const present = events.filter((e) => e.values[input] !== null && e.values[input] !== undefined);
  const vals = present.map((e) => e.values[input]!);
  const nums = vals as number[];
  switch (agg.op) {
    case 'count':
      return present.length;
    case 'sum':
      return vals.length === 0 ? null : nums.reduce((a, b) => a + b, 0);
    case 'avg':
      return vals.length === 0 ? null : nums.reduce((a, b) => a + b, 0) / nums.length;
    case 'min':
      return vals.length === 0 ? null : [...vals].sort(cmp)[0];
    case 'max':
      return vals.length === 0 ? null : [...vals].sort(cmp).at(-1);
    case 'variance':
    case 'stddev': {
      if (vals.length === 0) return null;
      const mean = nums.reduce((a, b) => a + b, 0) / nums.length;
      const v = nums.reduce((a, b) => a + (b - mean) ** 2, 0) / nums.length;
      return agg.op === 'variance' ? v : Math.sqrt(v);
    }
    case 'first':
      return vals.length === 0 ? null : [...present].sort(byTime)[0]!.values[input];
    case 'last':
      return vals.length === 0 ? null : [...present].sort(byTime).at(-1)!.values[input];
    case 'first_k':
      return vals.length === 0
        ? null
        : [...present]
            .sort(byTime)
            .slice(0, agg.k)
            .map((e) => e.values[input]);
    case 'last_k':
      return vals.length === 0
        ? null
        : [...present]
            .sort(byTime)
            .reverse()
            .slice(0, agg.k)
            .map((e) => e.values[input]);
    case 'top_k':
      return vals.length === 0 ? null : [...vals].sort(cmp).reverse().slice(0, agg.k);
    case 'bottom_k':
      return vals.length === 0 ? null : [...vals].sort(cmp).slice(0, agg.k);
    case 'unique_count':
      return new Set(vals).size;
    case 'approx_unique_count':
      return vals.length === 0 ? null : new Set(vals).size;
    case 'approx_percentile':
      return vals.length === 0 ? null : [...nums].sort((a, b) => a - b);
    case 'histogram': {
      const h: Record<string, number> = {};
      for (const v of vals) h[String(v)] = (h[String(v)] ?? 0) + 1;
      return h;
    }
    default:
      throw new Error(`oracle: unknown op ${agg.op}`);
  }
}

/** Magnitude of the terms of a float result, so relative comparison survives cancellation. */
export function floatScale(agg: OAgg, events: readonly OEvent[]): number {
  if (agg.input === null) return 0;
  if (!['sum', 'avg', 'variance', 'stddev'].includes(agg.op)) return 0;
  const nums = events.map((e) => e.values[agg.input!]).filter((v): v is number => typeof v === 'number');
  if (nums.length === 0) return 0;
  const absMax = Math.max(...nums.map(Math.abs));
  if (agg.op === 'sum') return nums.reduce((a, b) => a + Math.abs(b), 0);
  if (agg.op === 'variance') return absMax * absMax;
  return absMax;
}

/**
 * True when `got` is an acceptable DDSketch answer: for each quantile q, within 1% (the documented relative
 * accuracy) of some value whose rank lies between the lower-rank and nearest-rank definitions of q.
 */
export function percentilesOk(got: unknown, sorted: number[] | null, qs: readonly number[]): boolean {
  if (sorted === null) return got === null;
  if (!Array.isArray(got) || got.length !== qs.length) return false;
  const n = sorted.length;
  return qs.every((q, i) => {
    const v = got[i] as number;
    const lo = Math.max(0, Math.floor(q * (n - 1)) - 1);
    const hi = Math.min(n - 1, Math.max(Math.ceil(q * (n - 1)), Math.ceil(q * n) - 1) + 1);
    for (let r = lo; r <= hi; r++) {
      const x = sorted[r]!;
      if (Math.abs(v - x) <= 0.01 * Math.abs(x) + 1e-9) return true;
    }
    return false;
  });
}

/** HLL closeness: exact for tiny sets, within 5% otherwise (p = 14 documents ≈0.8% standard error). */
export function approxCountOk(got: unknown, exact: number | null): boolean {
  if (exact === null) return got === null;
  if (typeof got !== 'number' || !Number.isInteger(got)) return false;
  return Math.abs(got - exact) <= Math.max(1, 0.05 * exact);
}
