/**
 * A serve node whose log loses what its store's offsets count (here: the Redis Streams keys flushed while it
 * runs) stops the worker for good, as a fenced one (worker invariant 11): it reports why and turns
 * unready, instead of waiting and then silently skipping the new log's first events.
 */
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { startRedis } from '../support/servers.ts';
import { modelA, repo } from './fixtures.ts';

const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('a serve node whose log was flushed under it', () => {
  it.skipIf(!redis)('stops the worker, reports it and turns unready within a few seconds', async () => {
    const dir = tempDir('tessera-log-behind-');
    dirs.push(dir);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const raw = new Redis(redis!.url);
    const node = await startEmbedded({
      repo,
      store: 'redis',
      log: 'redis',
      redisUrl: redis!.url,
      redisPrefix: 'behind:',
      dataDir: dir,
      port: 0,
    });
    try {
      const client = createClient({ url: node.url });
      const t = Date.now();
      await client.ingest(
        'tx',
        Array.from({ length: 20 }, (_, i) => ({
          card_id: 'c1',
          merchant_id: 'm1',
          amount: 1,
          ts: t - 60_000 + i,
        })),
      );
      const count = async () =>
        (await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }]))[0]!.features
          .card_stats_count_1h;
      const until = Date.now() + 10_000;
      while ((await count()) !== 20 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(await count()).toBe(20);
      expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
      // The log's keys go (FLUSHDB of a Redis used for the log only, a key expiry, a manual DEL).
      const keys = await raw.keys('behind:log:*');
      expect(keys.length).toBeGreaterThan(0);
      await raw.del(...keys);
      const flushed = Date.now();
      let res = await fetch(`${node.url}/readyz`);
      while (res.status === 200 && Date.now() - flushed < 5000) {
        await new Promise((r) => setTimeout(r, 50));
        res = await fetch(`${node.url}/readyz`);
      }
      expect(res.status).toBe(503);
      expect(Date.now() - flushed).toBeLessThan(3000);
      const { reason } = (await res.json()) as { reason: string };
      expect(reason).toMatch(
        /stream worker tx\/0 stopped: the store's committed offset 20 is past the end of redis log topic 'tx' partition 0 \(0 records\)/,
      );
      expect(errors.mock.calls.flat().join('\n')).toMatch(
        /tessera serve: stream worker tx\/0 stopped: .*past the end/,
      );
      // Events sent now are not applied from offset 20 of the new log (its first 20 would be skipped).
      await client.ingest('tx', [{ card_id: 'c1', merchant_id: 'm1', amount: 1, ts: t }]);
      await new Promise((r) => setTimeout(r, 300));
      expect(await count()).toBe(20);
    } finally {
      errors.mockRestore();
      raw.disconnect();
      await node.close();
    }
  });
});
