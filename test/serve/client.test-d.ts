import { describe, expectTypeOf, it } from 'vitest';
import {
  createClient,
  type FeatureResult,
  type IngestEvent,
  type RequestRow,
} from '../../src/serve/client.ts';
import type { FeatureStatus } from '../../src/serve/feature-status.ts';
import type { SourceDef } from '../../src/define/types.ts';
import { cardStats, modelA, modelB, tx } from './fixtures.ts';

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

  it("requires the join's key columns (null allowed: no entity), the other left columns optional", async () => {
    expectTypeOf<RequestRow<typeof modelA>>().toEqualTypeOf<{
      card_id: string | null;
      merchant_id: string | null;
      amount?: number | null;
      ts?: number | null;
    }>();
    await client.feature(modelA, { card_id: null, merchant_id: 'm1' });
    await client.feature(modelB, { card_id: 'c1' });
    // @ts-expect-error: merchant_id is a key column of model_a (the server answers 400 without it)
    await client.feature(modelA, { card_id: 'c1' });
    // @ts-expect-error: the same in a batch
    await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }, { card_id: 'c2' }]);
    // @ts-expect-error: a group-by's rows carry its key
    await client.groupBy(cardStats, [{}]);
  });

  it("types ingested events by the source's schema: non-nullable columns required", async () => {
    expectTypeOf<IngestEvent<typeof tx>>().toEqualTypeOf<{
      card_id: string;
      merchant_id: string;
      amount: number;
      ts: number | string;
    }>();
    await client.ingest(tx, [{ card_id: 'c1', merchant_id: 'm1', amount: 3, ts: '2026-08-01T00:00:00Z' }]);
    // @ts-expect-error: amount is not nullable, so the server refuses an event without it
    await client.ingest(tx, [{ card_id: 'c1', merchant_id: 'm1', ts: 1 }]);
    // @ts-expect-error: 'amnt' is no column of tx
    await client.ingest(tx, [{ card_id: 'c1', merchant_id: 'm1', amount: 3, amnt: 3, ts: 1 }]);
    // By name, the events are not typed; nor for a source or a name the caller only knows at run time.
    await client.ingest('tx', [{ anything: 1 }]);
    const dynamic = tx.name.length > 0 ? (tx as SourceDef) : 'tx';
    await client.ingest(dynamic, [{ anything: 1 }]);
  });
});
