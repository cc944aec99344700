import { describe, expectTypeOf, it } from 'vitest';
import { createClient, type FeatureResult } from '../../src/serve/client.ts';
import type { FeatureStatus } from '../../src/serve/feature-status.ts';
import { cardStats, modelA, modelB } from './fixtures.ts';

const client = createClient({ url: 'http://127.0.0.1:1' });

describe('typed client', () => {
  it("returns the join's inferred feature type", () => {
    const rows = client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }]);
    expectTypeOf(rows).resolves.toEqualTypeOf<
      FeatureResult<{
        card_stats_count_1h: number;
        card_stats_count_1d: number;
        card_stats_amount_sum_1d: number | null;
        m_merchant_stats_count_1h: number;
        m_merchant_stats_card_id_last_1d: string | null;
      }>[]
    >();
  });

  it('types derivations and statuses', async () => {
    const one = await client.feature(modelB, { card_id: 'c1', amount: 3 });
    expectTypeOf(one.features.amount_share).toEqualTypeOf<number | null>();
    expectTypeOf(one.status.card_stats_count_1h).toEqualTypeOf<FeatureStatus>();
  });

  it('checks request columns and feature names at compile time', async () => {
    // @ts-expect-error: 'cardid' is not a column of the left source
    await client.features(modelA, [{ cardid: 'c1' }]);
    // @ts-expect-error: amount is a number column
    await client.feature(modelB, { card_id: 'c1', amount: 'x' });
    const [row] = await client.groupBy(cardStats, [{ card_id: 'c1' }]);
    expectTypeOf(row!.features.card_stats_count_1h).toEqualTypeOf<number>();
    // @ts-expect-error: no such feature
    void row!.features.card_stats_count_5m;
  });
});
