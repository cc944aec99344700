import { count, groupBy, sum, uniqueCount } from '../../../src/index.ts';
import { charges } from './sources.ts';

export const cardStats = groupBy({
  name: 'card_stats',
  source: charges,
  keys: ['card_id'],
  owner: 'risk',
  aggregations: [count({ windows: ['1h', '1d'] }), sum('amount', { windows: ['1d'] })],
});

export const merchantStats = groupBy({
  name: 'merchant_stats',
  source: charges,
  keys: ['merchant_id'],
  aggregations: [uniqueCount('card_id', { windows: ['7d'] })],
});
