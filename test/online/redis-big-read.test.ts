import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { KEYS_PER_TIMEOUT } from '../../src/online/redis-store.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';

/**
 * A fetch reads its tiles in one MGET (one per store partition on a Cluster), since a read split into
 * several commands would not be a snapshot; so a 1000-row fetch of a join over many group-bys is one
 * command of thousands of keys, whose reply may take longer than the command timeout to cross a slow link
 * from a healthy Redis. Such a read gets one timeout per KEYS_PER_TIMEOUT keys, and a read that still times
 * out says how many keys it read, the timeout it had and the setting to raise.
 */
const redis = await startRedis();
const cluster = await startRedisCluster();
afterAll(async () => {
  if (redis) process.kill(redis.pid, 'SIGCONT');
  await redis?.stop();
  await cluster?.stop();
});

const TIMEOUT_MS = 200;
/** Redis stops answering for this long (SIGSTOP): past one timeout, well within five. */
const PAUSE_MS = 350;

describe.skipIf(!redis)('Redis store: the timeout of a big read', () => {
  it('scales with the keys of its MGET, and a timed-out read names its size and the setting', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'big:', commandTimeoutMs: TIMEOUT_MS });
    const bytes = Uint8Array.from([1, 2, 3]);
    const keys = Array.from({ length: 4 * KEYS_PER_TIMEOUT + 1 }, (_, i) => `k${i}`);
    try {
      await store.commit({ tiles: [{ groupBy: 'g', key: 'k7', level: 1000, start: 0, bytes }] });
      const pause = () => {
        process.kill(redis!.pid, 'SIGSTOP');
        setTimeout(() => process.kill(redis!.pid, 'SIGCONT'), PAUSE_MS);
        return new Promise((r) => setTimeout(r, PAUSE_MS + 50));
      };

      // 5 timeouts (1000 ms) for 4 * KEYS_PER_TIMEOUT + 1 keys: answered once Redis resumes.
      let paused = pause();
      const big = await store.readTiles(keys.map((key) => ({ groupBy: 'g', key })));
      expect(big).toHaveLength(keys.length);
      expect(big[7]).toEqual([{ level: 1000, start: 0, bytes }]);
      await paused;

      // KEYS_PER_TIMEOUT keys get the plain timeout and fail, naming what to change.
      paused = pause();
      const failed = await store
        .readTiles(keys.slice(0, KEYS_PER_TIMEOUT).map((key) => ({ groupBy: 'g', key })))
        .catch((e: Error) => e);
      await paused;
      expect(failed).toBeInstanceOf(StoreUnavailableError);
      expect((failed as Error).message).toMatch(
        new RegExp(
          `readTiles of ${KEYS_PER_TIMEOUT} keys failed: Command timed out \\(no reply within ${TIMEOUT_MS} ms per ${KEYS_PER_TIMEOUT} keys read in one command; TESSERA_REDIS_TIMEOUT_MS\\).*raise TESSERA_REDIS_TIMEOUT_MS or fetch fewer rows per request`,
        ),
      );
      expect(await store.readTiles([{ groupBy: 'g', key: 'k7' }])).toEqual([
        [{ level: 1000, start: 0, bytes }],
      ]);
    } finally {
      process.kill(redis!.pid, 'SIGCONT');
      await store.close();
    }
  }, 20_000);

  it.skipIf(!cluster)(
    'on a Cluster, a big read of one store partition goes to its slot as one MGET',
    async () => {
      const store = openStore({ kind: 'redis', url: cluster!.url, prefix: 'big:', partitions: 1 });
      const bytes = Uint8Array.from([4, 5]);
      const keys = Array.from({ length: KEYS_PER_TIMEOUT + 5 }, (_, i) => `k${i}`);
      try {
        await store.commit({
          tiles: [0, 4100].map((i) => ({ groupBy: 'g', key: `k${i}`, level: 1000, start: 0, bytes })),
        });
        const got = await store.readTiles(keys.map((key) => ({ groupBy: 'g', key })));
        expect(got.map((t, i) => (t.length === 0 ? [] : [i]))).toEqual(
          keys.map((_, i) => (i === 0 || i === 4100 ? [i] : [])),
        );
        expect(got[4100]).toEqual([{ level: 1000, start: 0, bytes }]);
      } finally {
        await store.close();
      }
    },
  );
});
