import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { watchStoreHealth } from '../../src/serve/store-health.ts';
import { startRedis } from '../support/servers.ts';

/** watchStoreHealth: a cached verdict that never waits on the store, turning unready on a hung store. */
const redis = await startRedis();
afterAll(async () => {
  if (redis) process.kill(redis.pid, 'SIGCONT');
  await redis?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('watchStoreHealth', () => {
  it('is always healthy for a store without ping (LMDB)', () => {
    const h = watchStoreHealth({ kind: 'lmdb' } as OnlineStore);
    expect(h.unready()).toBeNull();
    h.stop();
  });

  it('names a failing ping, and turns healthy with the next successful one', async () => {
    let fail = true;
    const store = {
      kind: 'redis',
      ping: async () => {
        if (fail) throw new Error('Redis store at redis://x: PING failed: boom. Check that Redis is running');
      },
    } as unknown as OnlineStore;
    const h = watchStoreHealth(store, { intervalMs: 20 });
    await waitFor('unready', () => h.unready() !== null);
    expect(h.unready()).toMatch(/^online store unreachable: Redis store at redis:\/\/x: PING failed: boom/);
    fail = false;
    await waitFor('ready', () => h.unready() === null);
    h.stop();
  });

  it.skipIf(!redis)(
    'turns unready on a hung Redis within the ping timeout, ready after it resumes',
    async () => {
      const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'health:', commandTimeoutMs: 2000 });
      const h = watchStoreHealth(store, { intervalMs: 100, timeoutMs: 200 });
      try {
        await sleep(150);
        expect(h.unready()).toBeNull();
        process.kill(redis!.pid, 'SIGSTOP');
        const t = Date.now();
        await waitFor('unready', () => h.unready() !== null);
        expect(Date.now() - t).toBeLessThan(1000);
        expect(h.unready()).toMatch(/^online store unreachable: /);
        await sleep(500);
        expect(h.unready()).toContain(`Redis store at ${redis!.url}: PING failed: no reply within 200 ms`);
        process.kill(redis!.pid, 'SIGCONT');
        await waitFor('ready', () => h.unready() === null);
      } finally {
        process.kill(redis!.pid, 'SIGCONT');
        h.stop();
        await store.close();
      }
    },
    20_000,
  );
});
