import { col, count, eventSource, groupBy, sum } from '../../../src/index.ts';

export const charges = eventSource({
  name: 'charges',
  path: 'data/*.csv',
  timeColumn: 'ts',
  schema: { card_id: col.string(), amount: col.float(), ts: col.timestamp() },
});

export const cardStats = groupBy({
  name: 'card_stats',
  source: charges,
  keys: ['card_id'],
  aggregations: [count({ windows: ['1hr'] }), sum('card_id' as 'amount', { windows: ['1d'] })],
});
