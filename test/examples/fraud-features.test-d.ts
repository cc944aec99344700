import { expectTypeOf, test } from 'vitest';
import type { FraudFeatures } from '../../examples/fraud/features/fraud-model.ts';

test('fraud_model features are inferred from the definitions', () => {
  expectTypeOf<FraudFeatures['card_velocity_count_1h']>().toEqualTypeOf<number>();
  expectTypeOf<FraudFeatures['card_velocity_amount_sum_1h']>().toEqualTypeOf<number | null>();
  expectTypeOf<FraudFeatures['card_velocity_merchant_id_last_k_lifetime']>().toEqualTypeOf<string[] | null>();
  expectTypeOf<FraudFeatures['card_geo_country_histogram_30d']>().toEqualTypeOf<Record<string, number>>();
  expectTypeOf<FraudFeatures['pair_card_merchant_stats_count_lifetime']>().toEqualTypeOf<number>();
  expectTypeOf<FraudFeatures['amount_vs_card_avg_30d']>().toEqualTypeOf<number | null>();
  expectTypeOf<FraudFeatures>().not.toHaveProperty('card_velocity_count_2h');
});
