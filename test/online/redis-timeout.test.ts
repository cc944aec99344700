import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startRedis } from '../support/servers.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';
import { beforeCommit } from './store-hooks.ts';

/**
 * The Redis store's command timeout (redis-store.ts `commandTimeoutMs`): a hung Redis (SIGSTOP) fails store
 * commands after the timeout instead of hanging them, and a stream worker whose commit timed out but was
 * applied once Redis woke up adopts it (worker invariant 8): no event lost or counted twice.
 */
const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  if (redis) process.kill(redis.pid, 'SIGCONT');
  await redis?.stop();
  for (const c of cleanups) c();
});

const TIMEOUT_MS = 300;
let prefix = 0;

describe.skipIf(!redis)('Redis store command timeout', () => {
  it('fails reads and PING of a hung Redis within the timeout, then works again', async () => {
    const store = openStore({
      kind: 'redis',
      url: redis!.url,
      prefix: `rt${prefix++}:`,
      commandTimeoutMs: TIMEOUT_MS,
    });
    try {
      await store.ping!();
      process.kill(redis!.pid, 'SIGSTOP');
      let t = Date.now();
      const read = await store.readTiles([{ groupBy: 'g', key: 'k' }]).catch((e: Error) => e);
      expect(Date.now() - t).toBeLessThan(TIMEOUT_MS + 1000);
      expect(read).toBeInstanceOf(StoreUnavailableError);
      expect((read as Error).message).toMatch(
        /^Redis store at redis:\/\/127\.0\.0\.1:\d+: .*no reply within 300 ms.*Check that Redis is running/,
      );
      t = Date.now();
      const ping = await store.ping!(100).catch((e: Error) => e);
      expect(Date.now() - t).toBeLessThan(1000);
      expect(ping).toBeInstanceOf(StoreUnavailableError);
      expect((ping as Error).message).toMatch(/PING failed: no reply within 100 ms/);
      process.kill(redis!.pid, 'SIGCONT');
      await store.ping!();
      expect(await store.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([[]]);
    } finally {
      process.kill(redis!.pid, 'SIGCONT');
      await store.close();
    }
  }, 20_000);

  for (const chunk of [undefined, 7]) {
    it(`a commit timed out while Redis hangs, applied when it resumes, is adopted (${chunk === undefined ? 'one script' : 'staged in chunks'})`, async () => {
      const logDir = tempDir();
      cleanups.push(logDir.remove);
      const inner = openStore({
        kind: 'redis',
        url: redis!.url,
        prefix: `rt${prefix++}:`,
        commandTimeoutMs: TIMEOUT_MS,
        ...(chunk === undefined ? {} : { commitChunkEntities: chunk }),
      });
      // The 2nd and 4th commits are sent to a stopped Redis, which resumes after the commit timed out.
      const store = beforeCommit(inner, (n) => {
        if (n === 2 || n === 4) {
          process.kill(redis!.pid, 'SIGSTOP');
          setTimeout(() => process.kill(redis!.pid, 'SIGCONT'), TIMEOUT_MS * 3);
        }
      });
      const log = openFileLog(logDir.path);
      const [topic] = streamTopics(events, groupBys, 1);
      const all = randomEvents(31, 300);
      await ingestEvents(log, events, groupBys, all);
      try {
        const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 });
        const errors: string[] = [];
        while (w.stats().nextOffset < 300) {
          try {
            await w.step();
          } catch (err) {
            errors.push((err as Error).message);
            if (errors.length > 20) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        expect(errors.length).toBeGreaterThanOrEqual(2);
        for (const e of errors) expect(e).toMatch(/no reply within 300 ms/);
        expect(errors.join('\n')).not.toMatch(/fenced/);
        expect((await inner.readOffsets(['stream/events/0']))['stream/events/0']).toBe('300');
        await expectUsersMatchOracle(store, all);
      } finally {
        process.kill(redis!.pid, 'SIGCONT');
        await log.close();
        await inner.close();
      }
    }, 30_000);
  }
});
