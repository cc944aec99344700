import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/online/log/event-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';

// Redis Streams specifics; the shared log contract (single Redis and Cluster) is in event-log.test.ts.
const [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
afterAll(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

const entries = (n: number): LogEntry[] =>
  Array.from({ length: n }, (_, i) => ({ partitionKey: `k${i}`, event: { k: `k${i}`, i } }));

describe.skipIf(!redis)('Redis Streams log on a single Redis', () => {
  it('appendTopics is all-or-nothing across topics and partitions', async () => {
    const log = openRedisStreamLog(redis!.url, { partitions: 3, prefix: 'at:' });
    const raw = new Redis(redis!.url);
    try {
      const ok = await log.appendTopics!([
        { topic: 'a', entries: entries(6) },
        { topic: 'b', entries: entries(4) },
      ]);
      expect(ok.map((r) => r.reduce((n, x) => n + x.count, 0))).toEqual([6, 4]);
      // A key of topic b's last partition that is not a log counter fails the whole batch before any write.
      await raw.set('at:log:{b:2}:next', 'x');
      await expect(
        log.appendTopics!([
          { topic: 'a', entries: entries(6) },
          { topic: 'b', entries: entries(9) },
        ]),
      ).rejects.toThrow(/log keys at:log:\{b:2\} \/ at:log:\{b:2\}:next are not a Tessera log partition/);
      expect((await log.endOffsets('a')).reduce((x, y) => x + y, 0)).toBe(6);
      expect((await log.endOffsets('b')).slice(0, 2).reduce((x, y) => x + y, 0)).toBe(
        ok[1].filter((r) => r.partition < 2).reduce((n, x) => n + x.count, 0),
      );
    } finally {
      raw.disconnect();
      await log.close();
    }
  });
});

describe.skipIf(!cluster)('Redis Streams log on a Redis Cluster', () => {
  it('has no appendTopics: streams of different slots cannot share one atomic script', async () => {
    const log = openRedisStreamLog(cluster!.url, { partitions: 3, prefix: 'at:' });
    try {
      expect(log.appendTopics).toBeUndefined();
      const res = await log.append('a', entries(30));
      expect(res.map((r) => r.partition).sort()).toEqual([0, 1, 2]);
      expect((await log.endOffsets('a')).reduce((x, y) => x + y, 0)).toBe(30);
    } finally {
      await log.close();
    }
  });
});
