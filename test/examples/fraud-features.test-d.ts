import { expectTypeOf, test } from 'vitest';
import { charges } from '../../examples/fraud/features/charges.ts';
import { fraudModel, type FraudFeatures } from '../../examples/fraud/features/fraud-model.ts';
import { createClient } from '../../src/index.ts';

test('fraud_model features are inferred from the definitions', () => {
  expectTypeOf<FraudFeatures['card_velocity_count_1h']>().toEqualTypeOf<number>();
  expectTypeOf<FraudFeatures['card_velocity_amount_sum_1h']>().toEqualTypeOf<number | null>();
  expectTypeOf<FraudFeatures['card_velocity_merchant_id_last_k_lifetime']>().toEqualTypeOf<string[] | null>();
  expectTypeOf<FraudFeatures['card_geo_country_histogram_30d']>().toEqualTypeOf<Record<string, number>>();
  expectTypeOf<FraudFeatures['pair_card_merchant_stats_count_lifetime']>().toEqualTypeOf<number>();
  expectTypeOf<FraudFeatures['amount_vs_card_avg_30d']>().toEqualTypeOf<number | null>();
  expectTypeOf<FraudFeatures>().not.toHaveProperty('card_velocity_count_2h');
});

test('typed client: fraud_model rows need every key column, charges events every required column', async () => {
  const client = createClient({ url: 'http://127.0.0.1:1' });
  const keys = {
    card_id: 'c1',
    merchant_id: 'm1',
    merchant_category: 'grocery',
    email_domain: 'example.com',
    card_bin: '411111',
    country: 'US',
  };
  // ip and device_id are nullable key columns: required, null means no entity.
  await client.feature(fraudModel, { ...keys, ip: null, device_id: 'd1', amount: 12 });
  // @ts-expect-error: merchant_id and the other key columns are missing (the server answers 400)
  await client.feature(fraudModel, { card_id: 'c1' });
  // @ts-expect-error: ip and device_id are key columns too, even though nullable
  await client.features(fraudModel, [keys]);

  const charge = {
    charge_id: 'x',
    ts: Date.now(),
    ...keys,
    amount: 12,
    channel: 'web',
    is_fraud: false,
  };
  await client.ingest(charges, [charge, { ...charge, ip: '10.0.0.1', device_id: null }]);
  // @ts-expect-error: amount, merchant_id and the other non-nullable columns are required
  await client.ingest(charges, [{ charge_id: 'x', card_id: 'c1', ts: Date.now() }]);
  // @ts-expect-error: is_online is derived: computed by Tessera, not sent
  await client.ingest(charges, [{ ...charge, is_online: true }]);
});
