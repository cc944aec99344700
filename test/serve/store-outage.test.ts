import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { freePort, startRedis, startRedisOn } from '../support/servers.ts';

/**
 * A Redis store that hangs (SIGSTOP) or dies (kill -9, then a restart on the same port): fetches answer
 * 503 naming the store and the fix within about the command timeout (not 500, not a hang), /readyz answers
 * 503 with that reason, on serve nodes with and without stream workers, and both recover by themselves.
 */
const FIXTURE_REPO = new URL('./fixture-repo', import.meta.url).pathname;
const TIMEOUT_MS = 500;
const hasRedis = (await startRedis().then((r) => r?.stop().then(() => true))) ?? false;
const repo = await loadRepo(FIXTURE_REPO, { checkFiles: false });
const dirs: string[] = [];
let savedTimeout: string | undefined;
beforeAll(() => {
  savedTimeout = process.env.TESSERA_REDIS_TIMEOUT_MS;
  process.env.TESSERA_REDIS_TIMEOUT_MS = String(TIMEOUT_MS);
});
afterAll(() => {
  if (savedTimeout === undefined) delete process.env.TESSERA_REDIS_TIMEOUT_MS;
  else process.env.TESSERA_REDIS_TIMEOUT_MS = savedTimeout;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, done: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function readyz(
  s: EmbeddedServer,
): Promise<{ code: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(1000) });
  return { code: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

/** A fetch of u1, with how long it took; a hang fails it (AbortSignal) instead of the test timing out. */
async function fetchU1(
  s: EmbeddedServer,
): Promise<{ code: number; ms: number; body: Record<string, unknown> }> {
  const t = Date.now();
  const res = await fetch(`${s.url}/v1/features/spend_model?user_id=u1`, {
    signal: AbortSignal.timeout(5000),
  });
  return { code: res.status, ms: Date.now() - t, body: (await res.json()) as Record<string, unknown> };
}

let redis: ChildProcess | null = null;
let server: EmbeddedServer | null = null;
afterEach(async () => {
  if (redis?.pid !== undefined && redis.exitCode === null && redis.signalCode === null) {
    process.kill(redis.pid, 'SIGCONT');
    redis.kill('SIGKILL');
  }
  await server?.close().catch(() => {});
  server = null;
  redis = null;
});

describe.skipIf(!hasRedis)('the Redis store hung or down', () => {
  for (const workers of [true, false])
    for (const outage of ['hung (SIGSTOP)', 'killed, then restarted'] as const)
      it(`${outage}: fetches and /readyz answer 503 naming the store, then recover (${workers ? 'with' : 'no'} workers)`, async () => {
        const port = await freePort();
        redis = await startRedisOn(port);
        const d = tempDir('tessera-outage-');
        dirs.push(d);
        server = await startEmbedded({
          repo,
          dataDir: join(d, 'state'),
          port: 0,
          store: 'redis',
          redisUrl: `redis://127.0.0.1:${port}`,
          workers,
          workerThreads: false,
          onWorkerError: () => {},
        });
        if (workers) {
          await createClient({ url: server.url }).ingest('payments', [
            { user_id: 'u1', amount: 3, ts: Date.now() - 1000 },
          ]);
          await server.drain();
        }
        expect((await fetchU1(server)).code).toBe(200);
        expect((await readyz(server)).code).toBe(200);

        if (outage === 'hung (SIGSTOP)') process.kill(redis.pid!, 'SIGSTOP');
        else {
          redis.kill('SIGKILL');
          await new Promise((r) => redis!.once('exit', r));
        }
        const down = await fetchU1(server);
        expect(down.code).toBe(503);
        expect(down.ms).toBeLessThan(TIMEOUT_MS + 2000);
        expect(down.body.error).toBe('unavailable');
        expect(down.body.message).toMatch(
          new RegExp(
            `^Redis store at redis://127\\.0\\.0\\.1:${port}: .* failed: .*Check that Redis is running, reachable and not blocked`,
          ),
        );
        await waitFor('/readyz 503', async () => (await readyz(server!)).code === 503, 5000);
        const { body } = await readyz(server);
        expect(body.status).toBe('unready');
        expect(body.reason).toMatch(/^online store unreachable: /);
        expect(body.reason).toContain(`redis://127.0.0.1:${port}`);

        if (outage === 'hung (SIGSTOP)') process.kill(redis.pid!, 'SIGCONT');
        else redis = await startRedisOn(port);
        await waitFor('/readyz 200', async () => (await readyz(server!)).code === 200);
        await waitFor('a fetch 200', async () => (await fetchU1(server!)).code === 200);
      }, 60_000);
});
