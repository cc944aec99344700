import { avg, count, first, groupBy, last, min, sum } from '../../../src/index.ts';
import { charges } from './charges.ts';

/** Per issuer BIN and country: BIN attacks enumerate card numbers of one issuer from one place. */
export const binCountryStats = groupBy({
  name: 'bin_country_stats',
  source: charges,
  keys: ['card_bin', 'country'],
  owner: 'issuer-risk',
  description: 'Traffic per issuer BIN and charge country.',
  aggregations: [
    count({ windows: ['1h', '1d'] }),
    avg('amount', { windows: ['7d'] }),
    min('amount', { windows: ['7d'] }),
  ],
});

/** Per card and merchant: the relationship history; a first purchase at a merchant is riskier. */
export const cardMerchantStats = groupBy({
  name: 'card_merchant_stats',
  source: charges,
  keys: ['card_id', 'merchant_id'],
  owner: 'risk-team',
  description: 'History of one card at one merchant.',
  aggregations: [
    count({ windows: ['1d', '30d', 'lifetime'] }),
    sum('amount', { windows: ['30d'] }),
    min('amount', { windows: ['90d'] }),
    first('amount', { windows: ['lifetime'] }),
    last('amount', { windows: ['lifetime'] }),
  ],
});
