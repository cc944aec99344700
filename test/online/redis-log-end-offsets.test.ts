/**
 * The Redis Streams log's end offsets count what its streams hold, not only what its append script
 * counted: a producer that XADDs to a partition's stream directly (README: direct producers) does not bump
 * the counter, and a worker past the counter would take the log for one that lost events and stop for good
 * (worker invariant 11).
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startRedis } from '../support/servers.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';

const redis = await startRedis();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await redis?.stop();
});

const [topic] = streamTopics(events, groupBys, 1);

describe.skipIf(!redis)('Redis Streams log end offsets', () => {
  it('count entries a producer XADDed directly, and read 0 once the keys are gone', async () => {
    const raw = new Redis(redis!.url);
    cleanups.push(() => raw.disconnect());
    const log = openRedisStreamLog(redis!.url, { prefix: 'direct:' });
    cleanups.push(() => log.close());
    await ingestEvents(log, events, groupBys, randomEvents(1, 5));
    expect(await log.endOffsets(topic.name)).toEqual([5]);
    // A direct producer: two more entries with the log's IDs (offsets 5 and 6), the counter left at 5.
    const stream = `direct:log:{${topic.name}:0}`;
    const [[, [, e]]] = (await raw.xrange(stream, '-', '+', 'COUNT', 1)) as [string, string[]][];
    await raw.xadd(stream, '0-6', 'e', e!);
    await raw.xadd(stream, '0-7', 'e', e!);
    expect(await raw.get(`${stream}:next`)).toBe('5');
    expect(await log.endOffsets(topic.name)).toEqual([7]);

    // A worker that applied them stays running while idle (it stopped for good, "0 records" past 5).
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: d.path });
    cleanups.push(() => store.close());
    const w = await createStreamWorker({ log, store, topic, partition: 0, pollMs: 20 });
    await w.drain();
    expect(w.stats().nextOffset).toBe(7);
    const abort = new AbortController();
    const running = w.run(abort.signal).then(
      () => null,
      (err: Error) => err,
    );
    await new Promise((r) => setTimeout(r, 2500));
    abort.abort();
    expect(await running).toBeNull();

    await raw.del(stream, `${stream}:next`);
    expect(await log.endOffsets(topic.name)).toEqual([0]);
  });
});
