import { col, join, type InferFeatures } from '../../../src/index.ts';
import { cardGeo, cardVelocity } from './card-features.ts';
import { charges } from './charges.ts';
import { categoryStats, merchantStats } from './merchant-features.ts';
import { deviceStats, emailDomainStats, ipStats } from './network-features.ts';
import { binCountryStats, cardMerchantStats } from './pair-features.ts';

/**
 * The fraud model's training and serving vector: every group-by looked up for the charge being scored,
 * as of just before it (a charge's features never include the charge itself). The left rows are the
 * charges, so `is_fraud` comes out next to the features as the label.
 */
export const fraudModel = join({
  name: 'fraud_model',
  left: charges,
  owner: 'risk-team',
  description: 'Card-payment fraud classifier features.',
  parts: [
    { groupBy: cardVelocity, keys: { card_id: 'card_id' } },
    { groupBy: cardGeo, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' } },
    { groupBy: categoryStats, keys: { merchant_category: 'merchant_category' } },
    { groupBy: ipStats, keys: { ip: 'ip' } },
    { groupBy: deviceStats, keys: { device_id: 'device_id' } },
    { groupBy: emailDomainStats, keys: { email_domain: 'email_domain' } },
    { groupBy: binCountryStats, keys: { card_bin: 'card_bin', country: 'country' } },
    // Prefixed to show the naming rule: pair_card_merchant_stats_count_1d, ...
    { groupBy: cardMerchantStats, keys: { card_id: 'card_id', merchant_id: 'merchant_id' }, prefix: 'pair' },
  ],
  derive: {
    // How unusual this amount is for the card: 1.0 is a typical charge.
    amount_vs_card_avg_30d: {
      type: col.float().nullable(),
      fn: (f, row) => {
        const avg = f.card_velocity_amount_avg_30d;
        return avg ? row.amount / avg : null;
      },
    },
    first_time_at_merchant: { type: col.bool(), fn: (f) => f.pair_card_merchant_stats_count_lifetime === 0 },
    country_changed: {
      type: col.bool(),
      fn: (f, row) =>
        f.card_velocity_country_last_lifetime !== null &&
        f.card_velocity_country_last_lifetime !== row.country,
    },
  },
});

export type FraudFeatures = InferFeatures<typeof fraudModel>;
