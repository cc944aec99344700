import { describe, expect, it } from 'vitest';
import {
  approxPercentile,
  avg,
  bottomK,
  count,
  first,
  firstK,
  groupBy,
  histogram,
  lastK,
  max,
  sum,
  topK,
  uniqueCount,
  variance,
} from '../../src/index.ts';
import { definitionError } from './errors.ts';
import { charges } from './fixtures.ts';

const H = 3_600_000;
const D = 24 * H;

describe('groupBy', () => {
  const cardStats = groupBy({
    name: 'card_stats',
    source: charges,
    keys: ['card_id'],
    owner: 'risk-team',
    description: 'Card velocity',
    aggregations: [
      count({ windows: ['5m', '1h', '1d', '30d'] }),
      sum('amount', { windows: ['1h', '1d'] }),
      avg('amount', { windows: [{ size: '1d', hop: '10m' }] }),
      approxPercentile('amount', { percentiles: [0.5, 0.95], windows: ['7d'] }),
      lastK('merchant_id', { k: 5, windows: ['lifetime'] }),
      uniqueCount('merchant_id', { windows: ['7d'], names: ['card_distinct_merchants_7d'] }),
    ],
  });

  it('names features {groupBy}_{input}_{op}_{window}, honouring overrides', () => {
    expect(cardStats.aggregations.flatMap((a) => a.names)).toEqual([
      'card_stats_count_5m',
      'card_stats_count_1h',
      'card_stats_count_1d',
      'card_stats_count_30d',
      'card_stats_amount_sum_1h',
      'card_stats_amount_sum_1d',
      'card_stats_amount_avg_1d',
      'card_stats_amount_approx_percentile_7d',
      'card_stats_merchant_id_last_k_lifetime',
      'card_distinct_merchants_7d',
    ]);
  });

  it('parses windows with DESIGN default hops, hop overrides and lifetime', () => {
    const windows = cardStats.aggregations.flatMap((a) => a.windows.map((w) => [w.label, w.sizeMs, w.hopMs]));
    expect(windows).toEqual([
      ['5m', 5 * 60_000, 1000],
      ['1h', H, 5 * 60_000],
      ['1d', D, H],
      ['30d', 30 * D, D],
      ['1h', H, 5 * 60_000],
      ['1d', D, H],
      ['1d', D, 10 * 60_000],
      ['7d', 7 * D, H],
      ['lifetime', null, D],
      ['7d', 7 * D, H],
    ]);
  });

  it('keeps params, the source identity and metadata, and is deeply frozen', () => {
    expect(cardStats.aggregations[3]!.params).toEqual({ percentiles: [0.5, 0.95] });
    expect(cardStats.aggregations[4]!.params).toEqual({ k: 5 });
    expect(cardStats.aggregations[0]!.params).toEqual({});
    expect(cardStats.aggregations[0]!.input).toBeNull();
    expect(cardStats.source).toBe(charges);
    expect(cardStats.owner).toBe('risk-team');
    expect(Object.isFrozen(cardStats.aggregations[3]!.params.percentiles)).toBe(true);
    expect(Object.isFrozen(cardStats.aggregations[1]!.windows[0])).toBe(true);
  });

  it('accepts every op on a fitting column, derived columns and multi-column keys', () => {
    const all = groupBy({
      name: 'all_ops',
      source: charges,
      keys: ['card_id', 'merchant_id'],
      aggregations: [
        variance('cents', { windows: ['1d'] }),
        max('ts', { windows: ['1d'] }),
        first('is_large', { windows: ['1d'] }),
        firstK('ip', { k: 2, windows: ['1d'] }),
        topK('amount', { k: 3, windows: ['1d'] }),
        bottomK('merchant_id', { k: 3, windows: ['1d'] }),
        histogram('is_fraud', { windows: ['1d'] }),
        count('ip', { windows: ['1d'] }),
      ],
    });
    expect(all.aggregations.map((a) => a.names[0])).toContain('all_ops_is_large_first_1d');
    expect(all.aggregations.map((a) => a.names[0])).toContain('all_ops_ip_count_1d');
  });

  it('reports unknown columns, op/type mismatches and bad windows, hops and params together', () => {
    const error = definitionError(() =>
      groupBy({
        name: 'broken',
        source: charges,
        keys: ['card' as 'card_id'],
        aggregations: [
          sum('amout' as 'amount', { windows: ['1h'] }),
          sum('card_id' as 'amount', { windows: ['1h'] }),
          max('is_fraud' as 'amount', { windows: ['1h'] }),
          count({ windows: ['1hour', '90x'] }),
          avg('amount', {
            windows: [
              { size: '1h', hop: '7m' },
              { size: 'lifetime', hop: '1d' },
            ],
          }),
          lastK('merchant_id', { k: 0, windows: ['1d'] }),
          topK('amount', { windows: ['1d'] } as { k: number; windows: ['1d'] }),
          approxPercentile('amount', { percentiles: [0.5, 95], windows: ['1d'] }),
        ],
      }),
    );
    expect(error.message).toMatchInlineSnapshot(`
      "Invalid feature definitions (11 issues):
        - groupBy 'broken' › keys[0]: key column 'card' is not in source 'charges'
          fix: use one of 'charge_id', 'card_id', 'merchant_id', 'amount', 'cents', 'ip', 'is_fraud', 'ts', 'is_large'
        - groupBy 'broken' › aggregations[0].input: sum input column 'amout' is not in the source
          fix: use one of 'charge_id', 'card_id', 'merchant_id', 'amount', 'cents', 'ip', 'is_fraud', 'ts', 'is_large'
        - groupBy 'broken' › aggregations[1].input: sum cannot aggregate 'card_id' of type string
          fix: sum takes int, float columns: use one of those, or add a derived column to the source (derive: {...})
        - groupBy 'broken' › aggregations[2].input: max cannot aggregate 'is_fraud' of type bool
          fix: max takes string, int, float, timestamp columns: use one of those, or add a derived column to the source (derive: {...})
        - groupBy 'broken' › aggregations[3].windows[0]: window '1hour' is not a valid duration
          fix: use a duration like '30s', '10m', '1h', '7d', or 'lifetime'
        - groupBy 'broken' › aggregations[3].windows[1]: window '90x' is not a valid duration
          fix: use a duration like '30s', '10m', '1h', '7d', or 'lifetime'
        - groupBy 'broken' › aggregations[4].windows[0].hop: hop '7m' does not divide window '1h'
          fix: set a hop that divides 1h: { size: '1h', hop: '...' }
        - groupBy 'broken' › aggregations[4].windows[1].hop: a lifetime window has no hop
          fix: remove hop from the lifetime window
        - groupBy 'broken' › aggregations[5].k: k = 0 is out of range
          fix: use a whole number from 1 to 10000
        - groupBy 'broken' › aggregations[6].k: top_k needs k
          fix: set k, e.g. { k: 5, windows: [...] }
        - groupBy 'broken' › aggregations[7].percentiles[1]: percentile 95 is outside [0, 1]
          fix: write percentiles as fractions, e.g. 0.95 for p95"
    `);
  });

  it('reports duplicate windows, duplicate feature names and mismatched name overrides', () => {
    const error = definitionError(() =>
      groupBy({
        name: 'dupes',
        source: charges,
        keys: ['card_id', 'card_id'],
        aggregations: [
          count({ windows: ['24h', '1d'] }),
          count({ windows: ['1h'] }),
          sum('amount', { windows: ['1h'], names: ['dupes_count_1h'] }),
          sum('amount', { windows: ['1d', '7d'], names: ['only_one'] }),
        ],
      }),
    );
    expect(error.issues.map((i) => i.code)).toEqual([
      'duplicate_name',
      'duplicate_window',
      'duplicate_name',
      'invalid_value',
    ]);
    expect(error.message).toMatchInlineSnapshot(`
      "Invalid feature definitions (4 issues):
        - groupBy 'dupes' › keys[1]: key column 'card_id' is listed twice
          fix: list each key column once
        - groupBy 'dupes' › aggregations[0].windows[1]: window '1d' is the same as '24h'
          fix: remove one of the two windows
        - groupBy 'dupes' › aggregations[2]: feature 'dupes_count_1h' is produced by both aggregations[1].windows[0] and aggregations[2].windows[0]
          fix: remove the duplicate or give one of them names: [...]
        - groupBy 'dupes' › aggregations[3].names: names has 1 name for 2 windows
          fix: give exactly one name per window, in window order"
    `);
  });

  it('reports missing parts of the spec', () => {
    const error = definitionError(() =>
      groupBy({ name: '', source: {} as never, keys: [], aggregations: [] } as never),
    );
    expect(error.issues.map((i) => [i.code, i.path.join('.')])).toEqual([
      ['missing_field', 'name'],
      ['missing_field', 'source'],
      ['missing_field', 'keys'],
      ['missing_field', 'aggregations'],
    ]);
  });

  it('a default hop that does not divide the window is reported with the fix', () => {
    const error = definitionError(() =>
      groupBy({
        name: 'g',
        source: charges,
        keys: ['card_id'],
        aggregations: [count({ windows: ['1500ms'] })],
      }),
    );
    expect(error.issues[0]).toMatchObject({ code: 'bad_hop', path: ['aggregations', 0, 'windows', 0] });
  });
});
