import {
  approxUniqueCount,
  avg,
  bottomK,
  count,
  groupBy,
  histogram,
  topK,
  variance,
} from '../../../src/index.ts';
import { charges } from './charges.ts';

/** Per-merchant traffic: a merchant's normal ticket size and audience, to spot outliers against it. */
export const merchantStats = groupBy({
  name: 'merchant_stats',
  source: charges,
  keys: ['merchant_id'],
  owner: 'merchant-risk',
  description: 'Traffic, ticket sizes and audience per merchant.',
  aggregations: [
    count({ windows: ['1h', '1d', '7d'] }),
    avg('amount', { windows: ['7d', '30d'] }),
    variance('amount', { windows: ['30d'] }),
    approxUniqueCount('card_id', { windows: ['7d'] }),
    histogram('channel', { windows: ['7d'] }),
    topK('amount', { k: 3, windows: ['1d'] }),
  ],
});

/** Per-category traffic: context for how unusual a charge is for its kind of merchant. */
export const categoryStats = groupBy({
  name: 'category_stats',
  source: charges,
  keys: ['merchant_category'],
  owner: 'merchant-risk',
  description: 'Traffic and ticket sizes per merchant category.',
  aggregations: [
    count({ windows: ['5m', '1h'] }),
    avg('amount', { windows: ['1d'] }),
    bottomK('amount', { k: 3, windows: ['1h'] }),
  ],
});
