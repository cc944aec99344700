import { describe, expectTypeOf, it } from 'vitest';
import {
  approxPercentile,
  approxUniqueCount,
  avg,
  col,
  count,
  eventSource,
  first,
  groupBy,
  histogram,
  join,
  lastK,
  max,
  sum,
  topK,
  uniqueCount,
  variance,
  type InferFeatures,
  type InferRow,
} from '../../src/index.ts';

const charges = eventSource({
  name: 'charges',
  path: 'data/*.parquet',
  timeColumn: 'ts',
  schema: {
    card_id: col.string(),
    merchant_id: col.string(),
    amount: col.float(),
    ip: col.string().nullable(),
    ts: col.timestamp(),
  },
  derive: { is_large: { type: col.bool(), fn: (r) => r.amount > 500 } },
});

const cardStats = groupBy({
  name: 'card_stats',
  source: charges,
  keys: ['card_id'],
  aggregations: [
    count({ windows: ['5m', '1h'] }),
    sum('amount', { windows: ['1h'] }),
    avg('amount', { windows: [{ size: '1d', hop: '10m' }] }),
    approxPercentile('amount', { percentiles: [0.5], windows: ['7d'] }),
    lastK('merchant_id', { k: 5, windows: ['lifetime'] }),
    uniqueCount('merchant_id', { windows: ['7d'], names: ['card_distinct_merchants_7d'] }),
    max('ip', { windows: ['1d'] }),
    first('is_large', { windows: ['1d'] }),
    histogram('merchant_id', { windows: ['30d'] }),
    approxUniqueCount('ip', { windows: ['30d'] }),
  ],
});

const merchantStats = groupBy({
  name: 'merchant_stats',
  source: charges,
  keys: ['merchant_id'],
  aggregations: [
    count({ windows: ['1h'] }),
    variance('amount', { windows: ['1d'] }),
    topK('amount', { k: 3, windows: ['1d'] }),
  ],
});

const fraudModel = join({
  name: 'fraud_model',
  left: charges,
  parts: [
    { groupBy: cardStats, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
  ],
  derive: {
    amount_vs_avg: {
      type: col.float(),
      fn: (f, row) => {
        expectTypeOf(f.card_stats_amount_avg_1d).toEqualTypeOf<number | null>();
        expectTypeOf(f.m_merchant_stats_count_1h).toEqualTypeOf<number>();
        expectTypeOf(row.amount).toEqualTypeOf<number>();
        return row.amount / (f.card_stats_amount_avg_1d ?? 1);
      },
    },
  },
});

describe('inferred types', () => {
  it('infers source rows from the schema and derived columns', () => {
    expectTypeOf<InferRow<typeof charges>>().toEqualTypeOf<
      {
        card_id: string;
        merchant_id: string;
        amount: number;
        ip: string | null;
        ts: number;
      } & { is_large: boolean }
    >();
  });

  it('infers group-by features with generated and overridden names', () => {
    expectTypeOf<InferFeatures<typeof cardStats>>().toEqualTypeOf<{
      card_stats_count_5m: number;
      card_stats_count_1h: number;
      card_stats_amount_sum_1h: number | null;
      card_stats_amount_avg_1d: number | null;
      card_stats_amount_approx_percentile_7d: number[] | null;
      card_stats_merchant_id_last_k_lifetime: string[] | null;
      card_distinct_merchants_7d: number;
      card_stats_ip_max_1d: string | null;
      card_stats_is_large_first_1d: boolean | null;
      card_stats_merchant_id_histogram_30d: Record<string, number>;
      card_stats_ip_approx_unique_count_30d: number | null;
    }>();
  });

  it('infers join features with prefixes and derivations', () => {
    type F = InferFeatures<typeof fraudModel>;
    expectTypeOf<F['m_merchant_stats_count_1h']>().toEqualTypeOf<number>();
    expectTypeOf<F['m_merchant_stats_amount_variance_1d']>().toEqualTypeOf<number | null>();
    expectTypeOf<F['m_merchant_stats_amount_top_k_1d']>().toEqualTypeOf<number[] | null>();
    expectTypeOf<F['card_stats_count_5m']>().toEqualTypeOf<number>();
    expectTypeOf<F['amount_vs_avg']>().toEqualTypeOf<number | null>();
    expectTypeOf<F>().not.toHaveProperty('merchant_stats_count_1h');
    expectTypeOf<keyof F>().toEqualTypeOf<
      | 'card_stats_count_5m'
      | 'card_stats_count_1h'
      | 'card_stats_amount_sum_1h'
      | 'card_stats_amount_avg_1d'
      | 'card_stats_amount_approx_percentile_7d'
      | 'card_stats_merchant_id_last_k_lifetime'
      | 'card_distinct_merchants_7d'
      | 'card_stats_ip_max_1d'
      | 'card_stats_is_large_first_1d'
      | 'card_stats_merchant_id_histogram_30d'
      | 'card_stats_ip_approx_unique_count_30d'
      | 'm_merchant_stats_count_1h'
      | 'm_merchant_stats_amount_variance_1d'
      | 'm_merchant_stats_amount_top_k_1d'
      | 'amount_vs_avg'
    >();
  });

  it('rejects misuse at compile time', () => {
    // Unknown time column.
    // @ts-expect-error 'tss' is not a schema column
    eventSource({ name: 'x', path: 'p', timeColumn: 'tss', schema: { ts: col.timestamp() } });
    // Derived column returning the wrong type.
    eventSource({
      name: 'x',
      path: 'p',
      timeColumn: 'ts',
      schema: { ts: col.timestamp(), a: col.int() },
      // @ts-expect-error fn must return a string
      derive: { b: { type: col.string(), fn: (r) => r.a } },
    });
    // @ts-expect-error unknown key column
    groupBy({ name: 'g', source: charges, keys: ['card'], aggregations: [count({ windows: ['1h'] })] });
    groupBy({
      name: 'g',
      source: charges,
      keys: ['card_id'],
      // @ts-expect-error unknown aggregation input column
      aggregations: [sum('amout', { windows: ['1h'] })],
    });
    groupBy({
      name: 'g',
      source: charges,
      keys: ['card_id'],
      // @ts-expect-error sum over a string column
      aggregations: [sum('card_id', { windows: ['1h'] })],
    });
    groupBy({
      name: 'g',
      source: charges,
      keys: ['card_id'],
      // @ts-expect-error max over a boolean column
      aggregations: [max('is_large', { windows: ['1h'] })],
    });
    join({
      name: 'j',
      left: charges,
      // @ts-expect-error key mapping misses the group-by key
      parts: [{ groupBy: cardStats, keys: { merchant_id: 'merchant_id' } }],
    });
    join({
      name: 'j',
      left: charges,
      // @ts-expect-error key mapping names a column the left source lacks
      parts: [{ groupBy: cardStats, keys: { card_id: 'card' } }],
    });
    join({
      name: 'j',
      left: charges,
      parts: [{ groupBy: cardStats, keys: { card_id: 'card_id' } }],
      // @ts-expect-error unknown feature in a derivation
      derive: { x: { type: col.float(), fn: (f) => f.card_stats_count_7d } },
    });
  });
});
