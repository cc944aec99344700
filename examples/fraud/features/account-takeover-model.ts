import { col, join, type InferFeatures } from '../../../src/index.ts';
import { cardGeo, cardVelocity } from './card-features.ts';
import { charges } from './charges.ts';
import { deviceStats, emailDomainStats } from './network-features.ts';

/**
 * A second model, owned by another team, that reuses four of fraud_model's group-bys. They are the same
 * definitions, so they have the same semantic hashes: computed, stored and (in one request) fetched once
 * for both models. Only the derivation is new.
 */
export const accountTakeoverModel = join({
  name: 'account_takeover_model',
  left: charges,
  owner: 'identity-team',
  description: 'Account takeover: a card suddenly used from new devices, IPs and places.',
  parts: [
    { groupBy: cardGeo, keys: { card_id: 'card_id' } },
    { groupBy: cardVelocity, keys: { card_id: 'card_id' } },
    { groupBy: deviceStats, keys: { device_id: 'device_id' } },
    { groupBy: emailDomainStats, keys: { email_domain: 'email_domain' } },
  ],
  derive: {
    // The card's last seen device differs from this charge's: the classic takeover tell.
    new_device: {
      type: col.bool(),
      fn: (f, row) =>
        row.device_id !== null &&
        f.card_geo_device_id_last_lifetime !== null &&
        f.card_geo_device_id_last_lifetime !== row.device_id,
    },
  },
});

export type AccountTakeoverFeatures = InferFeatures<typeof accountTakeoverModel>;
