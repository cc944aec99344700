import { col, join } from '../../../../src/index.ts';
import { cardStats, merchantStats } from '../features.ts';
import { charges } from '../sources.ts';

export const fraudModel = join({
  name: 'fraud_model',
  left: charges,
  parts: [
    { groupBy: cardStats, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
  ],
  derive: {
    card_share: {
      type: col.float(),
      fn: (f, row) => (f.card_stats_amount_sum_1d ? row.amount / f.card_stats_amount_sum_1d : null),
    },
  },
});
