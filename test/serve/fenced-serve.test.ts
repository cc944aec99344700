import { rmSync } from 'node:fs';
import { join } from 'node:path';
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

describe('two serve processes running workers on one store (the unsupported layout)', () => {
  it.skipIf(!redis)('fences one: it turns unready and no event is counted twice', async () => {
    const dir = tempDir('tessera-fenced-');
    dirs.push(dir);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const shared = {
      repo,
      store: 'redis',
      log: 'redis',
      redisUrl: redis!.url,
      redisPrefix: 'fence:',
    } as const;
    const a = await startEmbedded({ ...shared, dataDir: join(dir, 'a'), port: 0 });
    const b = await startEmbedded({ ...shared, dataDir: join(dir, 'b'), port: 0 });
    try {
      const t = Date.now();
      const client = createClient({ url: a.url });
      // Several batches, so both workers race to commit the same offsets.
      for (let i = 0; i < 20; i++) {
        await client.ingest('tx', [{ card_id: 'c1', merchant_id: 'm1', amount: 1, ts: t - 60_000 + i }]);
        await new Promise((r) => setTimeout(r, 5));
      }
      const ready = async () =>
        Promise.all([a, b].map(async (s) => (await fetch(`${s.url}/readyz`)).status === 200));
      const deadline = Date.now() + 10_000;
      let states = await ready();
      while (states.every(Boolean) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        states = await ready();
      }
      expect(states.filter(Boolean)).toHaveLength(1);
      expect(errors.mock.calls.flat().join('\n')).toMatch(
        /tessera serve: stream worker tx\/0 stopped: .*fenced:/,
      );
      const live = states[0] ? a : b;
      await live.drain();
      const [row] = await createClient({ url: live.url }).features(modelA, [
        { card_id: 'c1', merchant_id: 'm1' },
      ]);
      expect(row!.features.card_stats_count_1h).toBe(20);
    } finally {
      errors.mockRestore();
      await a.close();
      await b.close();
    }
  });
});
