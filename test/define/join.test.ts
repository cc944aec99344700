import { describe, expect, it } from 'vitest';
import { col, count, featureNames, featureRefs, groupBy, join, sum, uniqueCount } from '../../src/index.ts';
import { definitionError } from './errors.ts';
import { charges, refunds } from './fixtures.ts';

const cardStats = groupBy({
  name: 'card_stats',
  source: charges,
  keys: ['card_id'],
  aggregations: [count({ windows: ['5m', '1h'] }), sum('amount', { windows: ['1d'] })],
});
const merchantStats = groupBy({
  name: 'merchant_stats',
  source: refunds,
  keys: ['merchant_id'],
  aggregations: [uniqueCount('card_id', { windows: ['7d'] })],
});

const fraudModel = join({
  name: 'fraud_model',
  left: charges,
  parts: [
    { groupBy: cardStats, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
  ],
  derive: {
    amount_vs_sum: {
      type: col.float(),
      fn: (f, row) => row.amount / (f.card_stats_amount_sum_1d ?? row.amount),
    },
  },
  owner: 'risk',
});

describe('join', () => {
  it('normalizes parts with key mappings and prefixes, and derivations with code', () => {
    expect(fraudModel.kind).toBe('join');
    expect(fraudModel.left).toBe(charges);
    expect(fraudModel.parts.map((p) => [p.kind, p.groupBy.name, p.keyMapping, p.prefix])).toEqual([
      ['joinPart', 'card_stats', { card_id: 'card_id' }, undefined],
      ['joinPart', 'merchant_stats', { merchant_id: 'merchant_id' }, 'm'],
    ]);
    const [derivation] = fraudModel.derivations;
    expect(derivation).toMatchObject({ kind: 'derivation', name: 'amount_vs_sum', type: 'float' });
    expect(derivation!.code).toContain('card_stats_amount_sum_1d');
    expect(derivation!.fn({ card_stats_amount_sum_1d: 50 }, { amount: 100 })).toBe(2);
    expect(Object.isFrozen(fraudModel.parts[1]!.keyMapping)).toBe(true);
  });

  it('resolves feature columns in stable order: parts, aggregations, windows, then derivations', () => {
    expect(featureRefs(fraudModel)).toEqual([
      { name: 'card_stats_count_5m', partIndex: 0, aggregationIndex: 0, windowIndex: 0 },
      { name: 'card_stats_count_1h', partIndex: 0, aggregationIndex: 0, windowIndex: 1 },
      { name: 'card_stats_amount_sum_1d', partIndex: 0, aggregationIndex: 1, windowIndex: 0 },
      { name: 'm_merchant_stats_card_id_unique_count_7d', partIndex: 1, aggregationIndex: 0, windowIndex: 0 },
    ]);
    expect(featureNames(fraudModel).at(-1)).toBe('amount_vs_sum');
  });

  it('maps keys to differently named left columns', () => {
    const byMerchantOfCard = join({
      name: 'm2',
      left: refunds,
      parts: [
        { groupBy: cardStats, keys: { card_id: 'card_id' } },
        { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' } },
      ],
    });
    expect(featureNames(byMerchantOfCard)).toHaveLength(4);
  });

  it('reports key mapping problems: missing and extra keys, missing left columns, type mismatches', () => {
    const error = definitionError(() =>
      join({
        name: 'bad_keys',
        left: refunds,
        parts: [
          { groupBy: cardStats, keys: {} as { card_id: 'card_id' } },
          {
            groupBy: cardStats,
            keys: { card_id: 'card_id', merchant_id: 'merchant_id' } as { card_id: 'card_id' },
            prefix: 'b',
          },
          { groupBy: cardStats, keys: { card_id: 'card' as 'card_id' }, prefix: 'c' },
          { groupBy: cardStats, keys: { card_id: 'amount' as 'card_id' }, prefix: 'd' },
        ],
      }),
    );
    expect(error.message).toMatchInlineSnapshot(`
      "Invalid feature definitions (4 issues):
        - join 'bad_keys' › parts[0].keys: group-by key 'card_id' of 'card_stats' is not mapped
          fix: add card_id: '<left column>'
        - join 'bad_keys' › parts[1].keys.merchant_id: 'merchant_id' is not a key of group-by 'card_stats' (keys: 'card_id')
          fix: remove 'merchant_id' from the mapping
        - join 'bad_keys' › parts[2].keys.card_id: left column 'card' is not in source 'refunds'
          fix: map 'card_id' to one of 'merchant_id', 'card_id', 'amount', 'ts'
        - join 'bad_keys' › parts[3].keys.card_id: left column 'amount' is float but key 'card_id' of 'card_stats' is string
          fix: map a left column of the same type, or derive one on the left source"
    `);
  });

  it('reports duplicate feature names across parts and derivations, and bad prefixes', () => {
    const error = definitionError(() =>
      join({
        name: 'dupes',
        left: charges,
        parts: [
          { groupBy: cardStats, keys: { card_id: 'card_id' } },
          { groupBy: cardStats, keys: { card_id: 'card_id' } },
          { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm-x' },
        ],
        derive: { card_stats_count_5m: { type: col.int(), fn: () => 1 } },
      }),
    );
    expect(error.issues.map((i) => [i.code, i.path.join('.')])).toEqual([
      ['duplicate_name', 'parts.1'],
      ['duplicate_name', 'parts.1'],
      ['duplicate_name', 'parts.1'],
      ['invalid_name', 'parts.2.prefix'],
      ['duplicate_name', 'derive.card_stats_count_5m'],
    ]);
    expect(error.issues[0]!.message).toBe(
      "feature 'card_stats_count_5m' comes from both parts[0] (card_stats) and parts[1] (card_stats)",
    );
    expect(error.issues[0]!.fix).toMatch(/prefix/);
  });

  it('reports a missing left source and empty parts', () => {
    const error = definitionError(() => join({ name: 'j', left: undefined, parts: [] } as never));
    expect(error.issues.map((i) => i.path.join('.'))).toEqual(['left', 'parts']);
  });
});
