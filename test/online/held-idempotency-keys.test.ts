import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { serverGroup } from '../support/server-group.ts';
import { startNats, startRedis, startRedisCluster } from '../support/servers.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';

/**
 * `heldIdempotencyKeys` (event-log.ts), which a replay asks which of its segments are in the log: per log
 * that dedupes, exactly the keys of batches appended to those topics within the window, reading only (a
 * key asked about can then still be used for any batch).
 */
const servers = serverGroup();
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await servers.stopAll();
});
const redis = await servers.start(startRedis());
const cluster = await servers.start(startRedisCluster(3));
const nats = await servers.start(startNats());

const PARTITIONS = 2;
let names = 0;
const logs: [string, boolean, (windowMs?: number) => EventLog][] = [
  [
    'file',
    true,
    (windowMs) => {
      const dir = tempDir();
      cleanups.push(dir.remove);
      return openFileLog(dir.path, { partitions: PARTITIONS, idempotencyWindowMs: windowMs });
    },
  ],
  [
    'redis',
    redis !== null,
    (windowMs) =>
      openRedisStreamLog(redis!.url, {
        partitions: PARTITIONS,
        prefix: `held${names++}:`,
        idempotencyWindowMs: windowMs,
      }),
  ],
  [
    'redis cluster',
    cluster !== null,
    (windowMs) =>
      openRedisStreamLog(cluster!.url, {
        partitions: PARTITIONS,
        prefix: `held${names++}:`,
        idempotencyWindowMs: windowMs,
      }),
  ],
  [
    'nats',
    nats !== null,
    (windowMs) =>
      openNatsLog(nats!.url, {
        partitions: PARTITIONS,
        prefix: `held${names++}`,
        idempotencyWindowMs: windowMs,
      }),
  ],
];

const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);

for (const [name, available, open] of logs) {
  describe.skipIf(!available)(`held idempotency keys of the ${name} log`, () => {
    it('names the keys of appended batches, for their topics only, and claims nothing', async () => {
      const log = open();
      cleanups.push(() => log.close());
      // Before any keyed append (no claims stream yet on NATS): none held.
      expect(await log.heldIdempotencyKeys!(topics, ['a', 'b'])).toEqual([false, false]);
      await ingestEvents(log, events, groupBys, randomEvents(1, 20), { idempotencyKey: 'a' });
      await ingestEvents(log, events, groupBys, randomEvents(2, 1), { idempotencyKey: 'c' });
      expect(await log.heldIdempotencyKeys!(topics, ['a', 'b', 'c'])).toEqual([true, false, true]);
      // Many keys in one call.
      const many = Array.from({ length: 600 }, (_, i) => `k${i}`);
      expect((await log.heldIdempotencyKeys!(topics, [...many, 'a'])).filter((x) => x)).toHaveLength(1);
      // Another topic's scope does not hold them.
      expect(await log.heldIdempotencyKeys!(['other_topic'], ['a'])).toEqual([false]);
      // Asking claimed nothing: 'b' takes any batch.
      const r = await ingestEvents(log, events, groupBys, randomEvents(3, 5), { idempotencyKey: 'b' });
      expect(r.replayed).toBe(false);
      expect(await log.heldIdempotencyKeys!(topics, ['b'])).toEqual([true]);
    }, 30_000);

    it('forgets keys past the window', async () => {
      const log = open(1000);
      cleanups.push(() => log.close());
      await ingestEvents(log, events, groupBys, randomEvents(4, 3), { idempotencyKey: 'short' });
      expect(await log.heldIdempotencyKeys!(topics, ['short'])).toEqual([true]);
      await new Promise((r) => setTimeout(r, 1300));
      expect(await log.heldIdempotencyKeys!(topics, ['short'])).toEqual([false]);
    }, 30_000);
  });
}
