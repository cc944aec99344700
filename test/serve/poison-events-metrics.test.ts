/**
 * Poison events written to the embedded log by another producer (worker.ts invariant 10): the node stays
 * ready, the events after them are served, and /metrics reports what was skipped, by group-by and reason.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { startRedis } from '../support/servers.ts';
import { modelA, repo, tx } from './fixtures.ts';

const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

describe('poison events in the embedded log', () => {
  it('are skipped and reported in /metrics; the node stays ready and serves later events', async () => {
    const dir = tempDir('tessera-poison-');
    dirs.push(dir);
    const dataDir = join(dir, 'state');
    const t = Date.now();
    // Another producer appends straight to the log (no ingest checks): a key too long for LMDB, then a
    // record without its time column.
    const log = openFileLog(join(dataDir, 'log'));
    const [topic] = streamTopics(tx, repo.groupBys, 1);
    const poison: Row[] = [
      { card_id: 'c'.repeat(4000), merchant_id: 'm1', amount: 1, ts: t - 3000 },
      { card_id: 'c1', merchant_id: 'm1', amount: 1 },
    ];
    await log.append(
      topic.name,
      poison.map((event) => ({ partitionKey: 'p', event })),
    );
    await log.close();

    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (m: string) => warnings.push(m);
    const server = await startEmbedded({ repo, dataDir, port: 0 });
    try {
      const client = createClient({ url: server.url });
      await client.ingest('tx', [{ card_id: 'c1', merchant_id: 'm1', amount: 3, ts: t - 1000 }]);
      await server.drain();
      // merchant_stats applies the event whose card key is too long (its merchant key fits).
      const [row] = await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }]);
      expect(row!.features).toMatchObject({ card_stats_count_1h: 1, m_merchant_stats_count_1h: 2 });
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain(
        'tessera_groupby_events_skipped{group_by="card_stats",reason="key_too_long"} 1',
      );
      expect(metrics).toContain(
        'tessera_groupby_events_skipped{group_by="merchant_stats",reason="key_too_long"} 0',
      );
      expect(metrics).toContain('tessera_groupby_events_skipped{group_by="card_stats",reason="invalid"} 1');
      expect(metrics).toContain(
        'tessera_groupby_events_skipped{group_by="merchant_stats",reason="invalid"} 1',
      );
      expect(metrics).toContain('tessera_groupby_events_applied{group_by="merchant_stats"} 2');
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect(warnings.join('\n')).toMatch(
        /key of group-by 'card_stats' is too long .* at offset 0: 4000 bytes/,
      );
      expect(warnings.join('\n')).toMatch(/offset 1, column 'ts': event time is missing/);

      // A fetch of the skipped key: on LMDB no such entity can exist, so it is a missing key like any other
      // (it made the whole batch fail with 500 before), and the batch's other rows are served.
      const rows = await client.features(modelA, [
        { card_id: 'c'.repeat(4000), merchant_id: 'm1' },
        { card_id: 'c1', merchant_id: 'm1' },
      ]);
      expect(rows[0]!.features.card_stats_count_1h).toBe(0);
      expect(rows[0]!.status.card_stats_count_1h).toBe('missing_key');
      expect(rows[1]!.features.card_stats_count_1h).toBe(1);
    } finally {
      console.warn = warn;
      await server.close();
    }
  });

  it.skipIf(!redis)('on the Redis store a long key is applied and fetched like any other', async () => {
    const dir = tempDir('tessera-poison-redis-');
    dirs.push(dir);
    const server = await startEmbedded({
      repo,
      dataDir: join(dir, 'state'),
      port: 0,
      store: 'redis',
      redisUrl: redis!.url,
      redisPrefix: 'poison-serve:',
    });
    try {
      const client = createClient({ url: server.url });
      const long = 'c'.repeat(4000);
      const t = Date.now();
      await client.ingest('tx', [{ card_id: long, merchant_id: 'm1', amount: 3, ts: t - 1000 }]);
      await server.drain();
      const rows = await client.features(modelA, [
        { card_id: long, merchant_id: 'm1' },
        { card_id: 'c'.repeat(5000), merchant_id: 'm1' },
      ]);
      expect(rows[0]!.features.card_stats_count_1h).toBe(1);
      expect(rows[1]!.status.card_stats_count_1h).toBe('missing_key');
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain(
        'tessera_groupby_events_skipped{group_by="card_stats",reason="key_too_long"} 0',
      );
    } finally {
      await server.close();
    }
  });
});
