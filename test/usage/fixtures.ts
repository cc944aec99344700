import { col, count, eventSource, groupBy, join, last, sum } from '../../src/index.ts';

/**
 * A repo for usage tests: `card_stats` and `card_stats_twin` are the same computation under two names and
 * owners (one store id), used by two joins of two other owners; `merchant_amounts` is used by no join.
 */
export const tx = eventSource({
  name: 'tx',
  path: 'data/tx.jsonl',
  timeColumn: 'ts',
  schema: {
    card_id: col.string(),
    merchant_id: col.string().nullable(),
    amount: col.float(),
    ts: col.timestamp(),
  },
  filter: (r) => r.amount > 0,
});

const cardAggregations = [count({ windows: ['1h', '1d'] }), sum('amount', { windows: ['1d'] })];

export const cardStats = groupBy({
  name: 'card_stats',
  owner: 'risk',
  source: tx,
  keys: ['card_id'],
  aggregations: cardAggregations,
});

export const cardStatsTwin = groupBy({
  name: 'card_stats_twin',
  owner: 'ato',
  source: tx,
  keys: ['card_id'],
  aggregations: cardAggregations,
});

export const merchantStats = groupBy({
  name: 'merchant_stats',
  owner: 'payments',
  source: tx,
  keys: ['merchant_id'],
  aggregations: [count({ windows: ['1h'] }), last('card_id', { windows: ['1d'] })],
});

export const merchantAmounts = groupBy({
  name: 'merchant_amounts',
  source: tx,
  keys: ['merchant_id'],
  aggregations: [sum('amount', { windows: ['1d'] })],
});

export const fraudModel = join({
  name: 'fraud_model',
  owner: 'fraud',
  left: tx,
  parts: [
    { groupBy: cardStats, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
  ],
});

export const atoModel = join({
  name: 'ato_model',
  owner: 'ato',
  left: tx,
  parts: [{ groupBy: cardStatsTwin, keys: { card_id: 'card_id' } }],
});

export const usageRepo = {
  sources: [tx],
  groupBys: [cardStats, cardStatsTwin, merchantStats, merchantAmounts],
  joins: [fraudModel, atoModel],
};
