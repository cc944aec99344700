import type {
  AggregationDef,
  ColumnType,
  GroupByDef,
  OpName,
  OpParams,
  Scalar,
  WindowDef,
} from '../../../src/define/types.ts';
import type { OracleEvent } from './oracle.ts';
import type { Rng } from './prng.ts';

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export function win(label: string, sizeMs: number | null, hopMs: number): WindowDef {
  return { kind: 'window', label, sizeMs, hopMs };
}

const col = (type: ColumnType) => ({ kind: 'column', type, nullable: true }) as const;

export const SCHEMA = {
  k: col('string'),
  ts: col('timestamp'),
  amount: col('float'),
  qty: col('int'),
  merchant: col('string'),
  flag: col('bool'),
  at: col('timestamp'),
} as const;

/** One aggregation per (op, input) pair worth checking: every op, and every input type an op accepts. */
export const AGG_SPECS: readonly { op: OpName; input: string | null; params?: OpParams }[] = [
  { op: 'count', input: null },
  { op: 'count', input: 'amount' },
  { op: 'sum', input: 'amount' },
  { op: 'sum', input: 'qty' },
  { op: 'avg', input: 'amount' },
  { op: 'avg', input: 'qty' },
  { op: 'min', input: 'amount' },
  { op: 'min', input: 'merchant' },
  { op: 'max', input: 'qty' },
  { op: 'max', input: 'at' },
  { op: 'variance', input: 'amount' },
  { op: 'stddev', input: 'qty' },
  { op: 'first', input: 'merchant' },
  { op: 'last', input: 'amount' },
  { op: 'last', input: 'flag' },
  { op: 'first_k', input: 'qty', params: { k: 3 } },
  { op: 'last_k', input: 'merchant', params: { k: 4 } },
  { op: 'top_k', input: 'amount', params: { k: 3 } },
  { op: 'bottom_k', input: 'merchant', params: { k: 2 } },
  { op: 'unique_count', input: 'merchant' },
  { op: 'unique_count', input: 'qty' },
  { op: 'approx_unique_count', input: 'merchant' },
  { op: 'approx_percentile', input: 'amount', params: { percentiles: [0.5, 0.9, 0, 1] } },
  { op: 'histogram', input: 'flag' },
  { op: 'histogram', input: 'qty' },
];

export function makeGroupBy(windows: readonly WindowDef[], specs = AGG_SPECS): GroupByDef {
  const aggregations: AggregationDef[] = specs.map((s) => ({
    kind: 'aggregation',
    op: s.op,
    input: s.input,
    params: s.params ?? {},
    windows,
    names: windows.map((w) => `g_${s.input ?? 'events'}_${s.op}_${w.label}`),
  }));
  return {
    kind: 'groupBy',
    name: 'g',
    keys: ['k'],
    source: {
      kind: 'source',
      name: 'events',
      path: 'x',
      format: 'jsonl',
      timeColumn: 'ts',
      schema: SCHEMA,
      derived: {},
    },
    aggregations,
  };
}

const MERCHANTS = ['amazon', 'zalando', 'Éclair', 'apple', 'b', 'bb', '日本', 'z'];

/**
 * Random events in [lo, hi): some share a timestamp (ties), ~15% of each value is null, seq is the
 * generation (source) order and is unrelated to time order.
 */
export function genEvents(
  rng: Rng,
  n: number,
  lo: number,
  hi: number,
  keys: readonly string[] = ['a'],
): OracleEvent[] {
  const events: OracleEvent[] = [];
  const maybe = <T extends Scalar>(v: T): T | null => (rng.chance(0.15) ? null : v);
  for (let i = 0; i < n; i++) {
    const ts = events.length > 0 && rng.chance(0.1) ? rng.pick(events).ts : rng.int(lo, hi - 1);
    events.push({
      ts,
      seq: i,
      row: {
        k: rng.pick(keys),
        ts,
        amount: maybe(Math.round(rng.next() * 100_000) / 100 + 0.01),
        qty: maybe(rng.int(-50, 50)),
        merchant: maybe(rng.pick(MERCHANTS)),
        flag: maybe(rng.chance(0.3)),
        at: maybe(ts - rng.int(0, DAY)),
      },
    });
  }
  return events;
}
