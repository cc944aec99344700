import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { startRedis } from '../support/servers.ts';

/**
 * A worker whose batch fails at the same offset on every retry (here: the Redis store refuses every write,
 * `min-replicas-to-write 1` with no replica) turns /readyz unready, naming the partition, offset and error,
 * and ready again by itself once a commit succeeds. Workers in threads and on the serving thread.
 */
const FIXTURE_REPO = new URL('./fixture-repo', import.meta.url).pathname;
const redis = await startRedis();
const repo = await loadRepo(FIXTURE_REPO, { checkFiles: false });
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function readyz(
  s: EmbeddedServer,
): Promise<{ code: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`${s.url}/readyz`);
  return { code: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

async function failuresGauge(s: EmbeddedServer): Promise<number | null> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = /^tessera_worker_consecutive_failures\{topic="payments[^"]*",partition="0"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

describe.skipIf(!redis)('a stream worker failing at one offset', () => {
  for (const [name, workerThreads] of [
    ['worker threads', true],
    ['serving thread', false],
  ] as const) {
    it(`turns /readyz unready with the reason, then ready after its next commit (${name})`, async () => {
      const d = tempDir('tessera-stuck-');
      dirs.push(d);
      const admin = new Redis(redis!.url);
      const server = await startEmbedded({
        repo,
        dataDir: join(d, 'state'),
        port: 0,
        store: 'redis',
        redisUrl: redis!.url,
        redisPrefix: `stuck-${name.replace(' ', '-')}:`,
        workerThreads,
        workerUnreadyAfter: { failures: 3 },
        onWorkerError: () => {},
      });
      try {
        expect(server.workerThreads).toBe(workerThreads ? 1 : 0);
        expect((await readyz(server)).code).toBe(200);
        expect(await failuresGauge(server)).toBe(0);

        await admin.config('SET', 'min-replicas-to-write', '1');
        const t = Date.now();
        await createClient({ url: server.url }).ingest('payments', [
          { user_id: 'u1', amount: 3, ts: t - 1000 },
        ]);
        await waitFor('/readyz 503', async () => (await readyz(server)).code === 503);
        const { body } = await readyz(server);
        expect(body.status).toBe('unready');
        expect(body.reason).toMatch(/stream worker payments[^ ]*\/0 has failed \d+ time\(s\) in a row/);
        expect(body.reason).toContain('at offset 0');
        expect(body.reason).toMatch(/NOREPLICAS/);
        expect(body.reason).toContain('The worker retries; see the error');
        expect(await failuresGauge(server)).toBeGreaterThanOrEqual(3);

        await admin.config('SET', 'min-replicas-to-write', '0');
        await waitFor('/readyz 200', async () => (await readyz(server)).code === 200);
        expect((await readyz(server)).body).toEqual({ status: 'ready' });
        await server.drain();
        expect(await failuresGauge(server)).toBe(0);
        const res = await fetch(`${server.url}/v1/features/spend_model?user_id=u1`);
        expect(((await res.json()) as { features: Record<string, unknown> }).features).toMatchObject({
          user_spend_count_lifetime: 1,
        });
      } finally {
        await admin.config('SET', 'min-replicas-to-write', '0');
        admin.disconnect();
        await server.close();
      }
    }, 60_000);
  }
});
