import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { watchStoreHealth } from '../../src/serve/store-health.ts';
import { startRedisCluster } from '../support/servers.ts';

/**
 * The store health check on a 3-master Redis Cluster: one PING through the Cluster client asks one node,
 * so a master down (its slots' fetches answer 503) did not show in /readyz. Every master is asked now, and
 * the reason names the one that does not answer.
 */
const cluster = await startRedisCluster();
afterAll(async () => {
  for (const m of cluster?.masters ?? []) {
    try {
      process.kill(m.pid, 'SIGCONT');
    } catch {
      // killed by the test
    }
  }
  await cluster?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.skipIf(!cluster)('Redis Cluster store health', () => {
  it('names a hung master, then a dead one, and is ready while every master answers', async () => {
    const store = openStore({ kind: 'redis', url: cluster!.url, prefix: 'health:' });
    const health = watchStoreHealth(store, { intervalMs: 100, timeoutMs: 500 });
    const [, hung, dead] = cluster!.masters;
    const masterDown = (port: number, why: string) =>
      new RegExp(`master\\(s\\) down: 127\\.0\\.0\\.1:${port} \\(\\d+ slots\\): ${why}`);
    /** The reason past the store URL (which names every seed node). */
    const downPart = () => (health.unready() ?? '').split('PING failed:')[1] ?? '';
    try {
      await store.ping!();
      await sleep(300);
      expect(health.unready()).toBeNull();

      process.kill(hung!.pid, 'SIGSTOP');
      await waitFor('unready (hung master)', () => health.unready() !== null);
      await waitFor('the hung master named', () =>
        masterDown(hung!.port, 'no reply within').test(health.unready() ?? ''),
      );
      expect(health.unready()).toMatch(/^online store unreachable: Redis store at redis\+cluster:/);
      expect(downPart()).not.toContain(`:${dead!.port}`);
      process.kill(hung!.pid, 'SIGCONT');
      await waitFor('ready again', () => health.unready() === null);

      process.kill(dead!.pid, 'SIGKILL');
      await waitFor('the dead master named', () => masterDown(dead!.port, '').test(health.unready() ?? ''));
      expect(downPart()).not.toContain(`:${hung!.port}`);
      await expect(store.ping!(500)).rejects.toThrow(masterDown(dead!.port, ''));
    } finally {
      process.kill(hung!.pid, 'SIGCONT');
      health.stop();
      await store.close();
    }
  }, 30_000);
});
