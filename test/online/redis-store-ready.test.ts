import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { freePort, startRedisCluster } from '../support/servers.ts';

/**
 * A Redis store on a Cluster client not ready. Before it was ever ready, an operation waits for it longer
 * than the command timeout (max(10 s, seeds x 1 s + timeout): ioredis tries hung seed nodes ~1 s each), so
 * a Cluster slow to answer at first does not fail the first operation (`tessera serve`'s startup, an
 * upload), yet one that never answers fails after that. Once it has been ready, losing it is an outage:
 * operations fail within the command timeout, as on an unanswering single Redis.
 */
const cluster = await startRedisCluster();
afterAll(() => cluster?.stop());

/** The three kinds of operation, each of which waits for the Cluster first. */
const operations = (store: OnlineStore) => [
  () => store.readTiles([{ groupBy: 'g', key: 'k' }]),
  () => store.commit({ tiles: [{ groupBy: 'g', key: 'k', level: 1, start: 0, bytes: new Uint8Array(1) }] }),
  () => store.readCounters(),
];

/** Runs `op`: its error (or null) and how long it took. */
async function timed(op: () => Promise<unknown>): Promise<[Error | null, number]> {
  const t = performance.now();
  const error = await op().then(
    () => null,
    (e: Error) => e,
  );
  return [error, performance.now() - t];
}

describe('Redis store on a Cluster never ready', () => {
  it('fails reads, commits and counters after the first-ready wait (10 s), not the command timeout', async () => {
    const port = await freePort(); // nothing listens there
    const url = `redis+cluster://127.0.0.1:${port}`;
    const store = openStore({ kind: 'redis', url, prefix: 'ready:', partitions: 1, commandTimeoutMs: 300 });
    try {
      for (const [error, ms] of await Promise.all(operations(store).map(timed))) {
        expect(ms).toBeGreaterThan(9_000);
        expect(ms).toBeLessThan(13_000);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(error!.message).toMatch(
          new RegExp(
            `^Redis store at redis\\+cluster://127\\.0\\.0\\.1:${port}: connect failed: Redis Cluster not ready within 10000 ms`,
          ),
        );
      }
    } finally {
      await store.close();
    }
  }, 40_000);
});

describe.skipIf(!cluster)('Redis store on a Cluster', () => {
  it('waits past the command timeout for a Cluster slow to get ready the first time', async () => {
    // The only seed node answers 800 ms late (a proxy holding its connections), the command timeout is 300 ms.
    const proxy = await startCuttingProxy(cluster!.masters[0].port);
    proxy.holdNew();
    const release = setTimeout(() => proxy.release(), 800);
    const store = openStore({
      kind: 'redis',
      url: `redis+cluster://127.0.0.1:${proxy.port}`,
      prefix: 'ready-slow:',
      partitions: 3,
      commandTimeoutMs: 300,
    });
    try {
      const [error, ms] = await timed(() => store.readCounters());
      expect(error).toBeNull();
      expect(ms).toBeGreaterThan(700);
    } finally {
      clearTimeout(release);
      await store.close();
      await proxy.close();
    }
  }, 30_000);

  it('fails within the command timeout once a Cluster that was ready is lost', async () => {
    const store = openStore({
      kind: 'redis',
      url: cluster!.url,
      prefix: 'ready-lost:',
      partitions: 3,
      commandTimeoutMs: 300,
    });
    try {
      await store.commit({
        tiles: [{ groupBy: 'g', key: 'k', level: 1, start: 0, bytes: new Uint8Array(1) }],
      });
      await store.readCounters();
      await cluster!.stop(); // every master (the last test of this file)
      // Commands fail on their closed links ("Connection is closed.") until the client, having lost every
      // node, reconnects: no longer ready, so operations wait for it, each within the command timeout.
      const notReady =
        /^Redis store at redis\+cluster:\/\/[^:]+:\d+.*: connect failed: Redis Cluster not ready within 300 ms/;
      for (let i = 0; ; i++) {
        const [error, ms] = await timed(() => store.readCounters());
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(ms).toBeLessThan(2000);
        if (notReady.test(error!.message)) break;
        if (i === 50) throw new Error(`the Cluster client still seems ready: ${error!.message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const op of operations(store)) {
        const [error, ms] = await timed(op);
        expect(ms).toBeLessThan(2000);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(error!.message).toMatch(notReady);
      }
    } finally {
      await store.close();
    }
  }, 30_000);
});
