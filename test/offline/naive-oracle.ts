/**
 * A naive, independent implementation of DESIGN §1 for tests: filter the events of a key by
 * `floor((t - W) / h) * h <= ts < t`, then compute each op straight from its definition.
 */
export interface OracleEvent {
  readonly key: string;
  readonly ts: number;
  readonly seq: number;
  readonly value: number | null;
}

export type OracleOp =
  | 'count'
  | 'count_events'
  | 'sum'
  | 'avg'
  | 'min'
  | 'max'
  | 'first'
  | 'last'
  | 'last_k3'
  | 'first_k2'
  | 'top_k2'
  | 'variance'
  | 'unique_count'
  | 'histogram';

export function inWindow(ts: number, t: number, sizeMs: number | null, hopMs: number): boolean {
  if (ts >= t) return false;
  if (sizeMs === null) return true;
  return Math.floor((t - sizeMs) / hopMs) * hopMs <= ts;
}

export function naive(op: OracleOp, events: readonly OracleEvent[]): unknown {
  if (op === 'count_events') return events.length;
  const xs = events.filter((e) => e.value !== null);
  const values = xs.map((e) => e.value as number);
  const byTime = [...xs].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
  switch (op) {
    case 'count':
      return values.length;
    case 'unique_count':
      return new Set(values).size;
    case 'histogram': {
      const h: Record<string, number> = {};
      for (const v of values) h[String(v)] = (h[String(v)] ?? 0) + 1;
      return Object.fromEntries(
        Object.keys(h)
          .sort()
          .map((k) => [k, h[k]]),
      );
    }
  }
  if (values.length === 0) return null;
  switch (op) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'avg':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
    case 'first':
      return byTime[0].value;
    case 'last':
      return byTime[byTime.length - 1].value;
    case 'last_k3':
      return byTime
        .slice(-3)
        .reverse()
        .map((e) => e.value);
    case 'first_k2':
      return byTime.slice(0, 2).map((e) => e.value);
    case 'top_k2':
      return [...values].sort((a, b) => b - a).slice(0, 2);
    case 'variance': {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      return values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
    }
  }
}
