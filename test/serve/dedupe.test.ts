import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { allWindows } from '../../src/aggregate/window.ts';
import type { GroupByDef, Row } from '../../src/define/types.ts';
import { entityKey } from '../../src/online/entity-key.ts';
import {
  createFetchGroupBys,
  emptyGroupValues,
  type FetchCounters,
} from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { openLmdbStore } from '../../src/online/lmdb-store.ts';
import type { OnlineStore, TileRequest, TileWrite } from '../../src/online/store.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import { cardStats, merchantStats, repo } from './fixtures.ts';

const HOUR = 3_600_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % HOUR);

/** Tiles for `events` written through the same TileSet code the workers use. */
function tileWrites(groupBy: GroupByDef, events: readonly Row[]): TileWrite[] {
  const agg = createGroupAggregator(groupBy);
  const byKey = new Map<string, TileSet>();
  events.forEach((e, seq) => {
    const key = entityKey(groupBy.keys.map((k) => e[k]))!;
    let tiles = byKey.get(key);
    if (!tiles) byKey.set(key, (tiles = new TileSet(agg, allWindows(groupBy))));
    tiles.add(e, e.ts as number, seq);
  });
  const writes: TileWrite[] = [];
  for (const [key, tiles] of byKey) {
    for (const t of tiles.tiles()) {
      writes.push({
        groupBy: groupById(groupBy),
        key,
        level: t.level,
        start: t.start,
        bytes: agg.encode(t.irs),
      });
    }
  }
  return writes;
}

/** Counts round trips and the (group-by, key) pairs requested from the real LMDB store. */
function instrumented(store: OnlineStore) {
  const reads: TileRequest[][] = [];
  const wrapped: OnlineStore = {
    ...store,
    kind: store.kind,
    readTiles: (requests) => {
      reads.push([...requests]);
      return store.readTiles(requests);
    },
    commit: (b) => store.commit(b),
    readOffsets: (n) => store.readOffsets(n),
    stats: () => store.stats(),
    close: () => store.close(),
  };
  return { store: wrapped, reads };
}

const events: Row[] = [
  { card_id: 'c1', merchant_id: 'm1', amount: 10, ts: T0 - 30 * 60_000 },
  { card_id: 'c1', merchant_id: 'm2', amount: 5, ts: T0 - 2 * HOUR },
  { card_id: 'c2', merchant_id: 'm1', amount: 7, ts: T0 - 10 * 60_000 },
  { card_id: 'c1', merchant_id: 'm1', amount: 1, ts: T0 + 1 },
];

let dir: string;
let base: OnlineStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-dedupe-'));
  base = openLmdbStore(join(dir, 'store'));
  await base.commit({ tiles: [...tileWrites(cardStats, events), ...tileWrites(merchantStats, events)] });
});
afterAll(async () => {
  await base.close();
  rmSync(dir, { recursive: true, force: true });
});

function service() {
  const { store, reads } = instrumented(base);
  const counters: FetchCounters = { storeReads: 0, entitiesRead: 0, tilesDecoded: 0 };
  const s = createFeatureService({
    repo,
    groupById,
    fetchGroups: createFetchGroupBys(store, counters),
    emptyValues: emptyGroupValues,
  });
  return { s, reads, counters };
}

describe('request-time dedupe', () => {
  const rows = [
    { card_id: 'c1', merchant_id: 'm1', amount: 3 },
    { card_id: 'c1', merchant_id: 'm1', amount: 4 },
    { card_id: 'c2', merchant_id: 'm1', amount: 5 },
  ];

  it('reads and decodes a group-by shared by two joins once, in one store round trip', async () => {
    const { s, reads, counters } = service();
    const res = await s.fetchJoins(['model_a', 'model_b'], rows, T0);
    expect(reads).toHaveLength(1);
    const card = groupById(cardStats);
    const merchant = groupById(merchantStats);
    expect(reads[0]).toEqual([
      { groupBy: card, key: 'c1' },
      { groupBy: card, key: 'c2' },
      { groupBy: merchant, key: 'm1' },
    ]);
    expect(counters).toMatchObject({ storeReads: 1, entitiesRead: 3 });
    const tilesPerEntity = await base.readTiles(reads[0]!);
    expect(counters.tilesDecoded).toBe(tilesPerEntity.reduce((n, t) => n + t.length, 0));

    // Values match the events (window [T0 - W, T0), the event at T0 + 1 is in the future).
    const a = res.joins.model_a!;
    const b = res.joins.model_b!;
    expect(a[0]!.features).toMatchObject({
      card_stats_count_1h: 1,
      card_stats_count_1d: 2,
      card_stats_amount_sum_1d: 15,
      m_merchant_stats_count_1h: 2,
      m_merchant_stats_card_id_last_1d: 'c2',
    });
    expect(b[2]!.features).toEqual({
      card_stats_count_1h: 1,
      card_stats_count_1d: 1,
      card_stats_amount_sum_1d: 7,
      amount_share: 5 / 12,
    });
    expect(b[0]!.features.card_stats_count_1h).toBe(a[1]!.features.card_stats_count_1h);
  });

  it('costs two round trips and reads card_stats twice when the joins are fetched separately', async () => {
    const { s, reads, counters } = service();
    await s.fetchJoins(['model_a'], rows, T0);
    await s.fetchJoins(['model_b'], rows, T0);
    expect(reads).toHaveLength(2);
    expect(counters.entitiesRead).toBe(5);
  });

  it('answers missing_key with empty-window values for an unknown entity', async () => {
    const { s } = service();
    const res = await s.fetchJoins(['model_b'], [{ card_id: 'nobody', amount: 1 }], T0);
    expect(res.joins.model_b![0]).toEqual({
      features: {
        card_stats_count_1h: 0,
        card_stats_count_1d: 0,
        card_stats_amount_sum_1d: null,
        amount_share: null,
      },
      status: {
        card_stats_count_1h: 'missing_key',
        card_stats_count_1d: 'missing_key',
        card_stats_amount_sum_1d: 'missing_key',
        amount_share: 'ok',
      },
    });
  });
});
