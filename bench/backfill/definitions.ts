import { avg, col, count, eventSource, groupBy, join, max, min, sum } from '../../src/index.ts';

/** The benchmark's windows: label, size and default hop in ms (DESIGN §1 default hops). */
export const BENCH_WINDOWS = [
  { label: '1h', size: 3_600_000, hop: 300_000 },
  { label: '1d', size: 86_400_000, hop: 3_600_000 },
  { label: '7d', size: 7 * 86_400_000, hop: 3_600_000 },
  { label: '30d', size: 30 * 86_400_000, hop: 86_400_000 },
] as const;

const windows = BENCH_WINDOWS.map((w) => w.label);

/** count/sum/avg/min/max over 4 windows: 20 features, the same ones the SQL baseline computes. */
export function benchJoin(eventsPath: string, leftPath: string) {
  const events = eventSource({
    name: 'events',
    path: eventsPath,
    format: 'parquet',
    timeColumn: 'ts',
    schema: { key: col.string(), amount: col.float(), ts: col.timestamp() },
  });
  const stats = groupBy({
    name: 'bench',
    source: events,
    keys: ['key'],
    aggregations: [
      count({ windows }),
      sum('amount', { windows }),
      avg('amount', { windows }),
      min('amount', { windows }),
      max('amount', { windows }),
    ],
  });
  const left = eventSource({
    name: 'left',
    path: leftPath,
    format: 'parquet',
    timeColumn: 'ts',
    schema: { id: col.int(), key: col.string(), ts: col.timestamp() },
  });
  return join({ name: 'bench', left, parts: [{ groupBy: stats, keys: { key: 'key' } }] });
}

/** Feature columns in output order, with the SQL aggregate computing each. */
export const BENCH_FEATURES = (['count', 'sum', 'avg', 'min', 'max'] as const).flatMap((op) =>
  BENCH_WINDOWS.map((w) => ({
    name: op === 'count' ? `bench_count_${w.label}` : `bench_amount_${op}_${w.label}`,
    op,
    window: w,
  })),
);
