import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { freePort } from '../support/servers.ts';

/**
 * A Redis store on a Cluster client that never gets ready (no seed node answers) fails its operations
 * within the command timeout, as on an unanswering single Redis, rather than after untilReady's default
 * 10 s (plus the command's own timeout).
 */
describe('Redis store on a Cluster that never gets ready', () => {
  it('fails reads, commits and counters within the command timeout', async () => {
    const port = await freePort(); // nothing listens there
    const store = openStore({
      kind: 'redis',
      url: `redis+cluster://127.0.0.1:${port}`,
      prefix: 'ready:',
      partitions: 1,
      commandTimeoutMs: 300,
    });
    try {
      for (const op of [
        () => store.readTiles([{ groupBy: 'g', key: 'k' }]),
        () =>
          store.commit({ tiles: [{ groupBy: 'g', key: 'k', level: 1, start: 0, bytes: new Uint8Array(1) }] }),
        () => store.readCounters(),
      ]) {
        const t = performance.now();
        const error = await op().catch((e: Error) => e);
        expect(performance.now() - t).toBeLessThan(2000);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect((error as Error).message).toMatch(
          new RegExp(
            `^Redis store at redis\\+cluster://127\\.0\\.0\\.1:${port}: connect failed: Redis Cluster not ready within 300 ms`,
          ),
        );
      }
    } finally {
      await store.close();
    }
  }, 40_000);
});
