import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { isUnavailable, retryStart, type StartRetry } from '../../src/serve/worker-start.ts';
import { tempDir } from '../offline/support.ts';
import { freePort, startRedis, startRedisOn } from '../support/servers.ts';

/**
 * `tessera serve` started while its Redis store and log are down: it listens at once (/healthz 200, /readyz
 * 503 naming the store), retries starting its stream workers, and once Redis comes up on that port turns
 * ready, ingests and serves what it ingested, with its workers in threads or on the serving thread. It
 * used to fail to start, and then hang instead of exiting (the store's health check kept it alive).
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

function dir(prefix: string): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

async function waitFor(what: string, done: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function get(
  s: EmbeddedServer,
  path: string,
): Promise<{ code: number; body: Record<string, unknown> }> {
  const res = await fetch(`${s.url}${path}`, { signal: AbortSignal.timeout(5000) });
  return { code: res.status, body: (await res.json()) as Record<string, unknown> };
}

let redis: ChildProcess | null = null;
let server: EmbeddedServer | null = null;
afterEach(async () => {
  await server?.close().catch(() => {});
  redis?.kill('SIGKILL');
  server = null;
  redis = null;
});

describe.skipIf(!hasRedis)('tessera serve started before its Redis store and log', () => {
  for (const workerThreads of [true, false])
    it(`listens, reports the workers unready, and starts them once Redis is up (${workerThreads ? 'worker threads' : 'serving thread'})`, async () => {
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      const errors: string[] = [];
      const logged = console.error;
      console.error = (...args: unknown[]) => void errors.push(args.join(' '));
      try {
        const t0 = Date.now();
        server = await startEmbedded({
          repo,
          dataDir: join(dir('tessera-late-'), 'state'),
          port: 0,
          store: 'redis',
          log: 'redis',
          redisUrl: url,
          workerThreads,
          onWorkerError: () => {},
        });
        // Listening, without booting threads against a store that does not answer (a PING first).
        expect(Date.now() - t0).toBeLessThan(15_000);
        expect((await get(server, '/healthz')).code).toBe(200);
        const unready = await get(server, '/readyz');
        expect(unready.code).toBe(503);
        expect(unready.body.reason).toContain(url);
        // ioredis' wording ("Reached the max retries per request limit … for details..") is not ours to show.
        expect(unready.body.reason).not.toMatch(/maxRetriesPerRequest|max retries per request|\.\./);
        // Logged once per streak, not per retry.
        await sleep(2500);
        expect(errors.filter((e) => e.includes('the stream workers could not start')).length).toBe(1);
        expect(errors.find((e) => e.includes('could not start'))).toContain(url);
        expect(errors.join('\n')).not.toMatch(/maxRetriesPerRequest|max retries per request|\.\./);

        redis = await startRedisOn(port);
        await waitFor('/readyz 200', async () => (await get(server!, '/readyz')).code === 200, 20_000);
        expect(errors.some((e) => /the stream workers started after \d+ failed attempt/.test(e))).toBe(true);
        expect(server.workerThreads).toBe(workerThreads ? 1 : 0);

        await createClient({ url: server.url }).ingest('payments', [
          { user_id: 'u1', amount: 3, ts: Date.now() - 1000 },
          { user_id: 'u1', amount: 4, ts: Date.now() - 500 },
        ]);
        await server.drain();
        const fetched = await get(server, '/v1/features/spend_model?user_id=u1');
        expect(fetched.code).toBe(200);
        expect(JSON.stringify(fetched.body)).toMatch(/"user_spend_amount_sum_1d":7\b/);
      } finally {
        console.error = logged;
      }
    }, 90_000);
});

describe.skipIf(!hasRedis)('tessera serve (LMDB store) started before its Redis Streams log', () => {
  it("reports the log on /readyz, logs the workers' wait for it once, and ingests once the log is up", async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const errors: string[] = [];
    const logged = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(' '));
    try {
      server = await startEmbedded({
        repo,
        dataDir: join(dir('tessera-late-log-'), 'state'),
        port: 0,
        log: 'redis',
        redisUrl: url,
        workerThreads: false,
      });
      // Until the pipeline monitor's first read of the log, the reason is the workers' start retry.
      const logReason = /^reading the event log's end offsets failed: Redis Streams log at /;
      await waitFor(
        "/readyz 503 naming the log's end offsets",
        async () => logReason.test(String((await get(server!, '/readyz')).body.reason)),
        10_000,
      );
      const { body } = await get(server, '/readyz');
      expect(body.reason).toMatch(logReason);
      expect(body.reason).toContain(url);
      expect(body.reason).toContain('The event log has not answered since this node started');
      expect(body.reason).not.toMatch(/maxRetriesPerRequest|max retries per request|\.\./);
      await sleep(3000); // a few start retries (backoff from 500 ms): the workers wait for the log to answer
      const waits = errors.filter((e) => e.startsWith('tessera serve: the stream workers could not start:'));
      expect(waits).toHaveLength(1);
      expect(waits[0]).toContain(`Redis Streams log at ${url}`);

      redis = await startRedisOn(port);
      await waitFor('/readyz 200', async () => (await get(server!, '/readyz')).code === 200, 20_000);
      await createClient({ url: server.url }).ingest('payments', [
        { user_id: 'u2', amount: 5, ts: Date.now() - 1000 },
      ]);
      await server.drain();
      const fetched = await get(server, '/v1/features/spend_model?user_id=u2');
      expect(JSON.stringify(fetched.body)).toMatch(/"user_spend_amount_sum_1d":5\b/);
    } finally {
      console.error = logged;
    }
  }, 60_000);
});

describe.skipIf(!hasRedis)('tessera serve (--no-workers) started before its Redis Streams log', () => {
  it('stays ready: its fetches come from the store (only a node with workers waits for the log)', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const errors: string[] = [];
    const logged = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(' '));
    try {
      server = await startEmbedded({
        repo,
        dataDir: join(dir('tessera-late-log-noworkers-'), 'state'),
        port: 0,
        log: 'redis',
        redisUrl: url,
        workers: false,
      });
      // The monitor's reads of the log fail (logged), and the node stays ready.
      await waitFor('a failed read of the log', async () => errors.some((e) => e.includes(url)), 10_000);
      const ready = await get(server, '/readyz');
      expect(ready.code).toBe(200);
      expect((await get(server, '/v1/features/spend_model?user_id=u9')).code).toBe(200);
    } finally {
      console.error = logged;
    }
  }, 30_000);
});

describe.skipIf(!hasRedis)('tessera serve whose Redis answers late with a store it cannot use', () => {
  it('reports the failure (failed resolves; tessera serve exits 1) and drain rejects, instead of idling unready', async () => {
    const port = await freePort();
    redis = await startRedisOn(port);
    const client = new Redis(port, '127.0.0.1');
    await client.set('tessera:format', '99');
    client.disconnect();
    redis.kill('SIGSTOP'); // paused: connects, never answers
    const errors: string[] = [];
    const logged = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(' '));
    try {
      server = await startEmbedded({
        repo,
        dataDir: join(dir('tessera-late-layout-'), 'state'),
        port: 0,
        store: 'redis',
        redisUrl: `redis://127.0.0.1:${port}`,
        workerThreads: false,
      });
      let failure: Error | null = null;
      void server.failed.then((e) => (failure = e));
      await createClient({ url: server.url }).ingest('payments', [
        { user_id: 'u3', amount: 1, ts: Date.now() - 1000 },
      ]);
      const drained = server.drain();
      drained.catch(() => {});
      await sleep(1000);
      expect(failure).toBeNull();
      expect((await get(server, '/readyz')).code).toBe(503);

      redis.kill('SIGCONT');
      const error = await server.failed;
      expect(error.message).toMatch(/^the stream workers could not start: .*holds store layout 99/);
      await expect(drained).rejects.toThrow(/^cannot drain: the stream workers could not start: /);
      await expect(server.drain()).rejects.toThrow(/cannot drain/);
      expect((await get(server, '/readyz')).code).toBe(503);
      expect(
        errors.filter((e) => e.startsWith('tessera serve: the stream workers could not start: ')).length,
      ).toBe(2); // the wait, then the failure
    } finally {
      console.error = logged;
      redis.kill('SIGCONT');
    }
  }, 60_000);
});

describe.skipIf(!hasRedis)('tessera serve with a wrong Redis password', () => {
  it('fails to start at once, naming the fix (waiting would not help)', async () => {
    const port = await freePort();
    redis = await startRedisOn(port, ['--requirepass', 'right']);
    const t0 = Date.now();
    await expect(
      startEmbedded({
        repo,
        dataDir: join(dir('tessera-wrongpass-'), 'state'),
        port: 0,
        store: 'redis',
        redisUrl: `redis://:wrong@127.0.0.1:${port}`,
        workerThreads: false,
      }),
    ).rejects.toThrow(
      /WRONGPASS.*Redis answered with an error, so waiting will not help: fix the user and password in --redis/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 30_000);
});

describe.skipIf(!hasRedis)('tessera serve with an LMDB store and a Redis Streams log Redis refuses', () => {
  for (const [what, url, message] of [
    [
      'a wrong password',
      (port: number) => `redis://:wrong@127.0.0.1:${port}`,
      /WRONGPASS.*waiting will not help: fix the user and password in --redis/,
    ],
    [
      'a database number the server lacks',
      (port: number) => `redis://:right@127.0.0.1:${port}/99`,
      /Redis Streams log at redis:\/\/.*\/99: Redis refused to select the database number/,
    ],
  ] as const)
    it(`fails to start with ${what}, instead of retrying the workers' batches forever`, async () => {
      const port = await freePort();
      redis = await startRedisOn(port, ['--requirepass', 'right']);
      const t0 = Date.now();
      await expect(
        startEmbedded({
          repo,
          dataDir: join(dir('tessera-log-refused-'), 'state'),
          port: 0,
          store: 'lmdb',
          log: 'redis',
          redisUrl: url(port),
          workerThreads: false,
        }),
      ).rejects.toThrow(message);
      expect(Date.now() - t0).toBeLessThan(10_000);
    }, 30_000);
});

describe('tessera serve on a --data-dir another serve writes', () => {
  it('is refused with advice for serve, not for stream --replay', async () => {
    const dataDir = join(dir('tessera-lock-'), 'state');
    server = await startEmbedded({ repo, dataDir, port: 0, workerThreads: false });
    const second = startEmbedded({ repo, dataDir, port: 0, workerThreads: false });
    await expect(second).rejects.toThrow(
      /being written by another log instance of this process, most likely another tessera serve or tessera stream using this --data-dir/,
    );
    await expect(second).rejects.toThrow(/give this tessera serve its own --data-dir/);
    await expect(second).rejects.not.toThrow(/--replay/);
  });
});

describe('isUnavailable', () => {
  it('finds an unavailable store or log through causes and across threads (by name)', () => {
    const down = new StoreUnavailableError('Redis store at redis://x: PING failed');
    expect(isUnavailable(down)).toBe(true);
    expect(isUnavailable(new Error('stream worker thread could not start: …', { cause: down }))).toBe(true);
    const fromThread = Object.assign(new Error('NATS down'), { name: 'LogUnavailableError' });
    expect(isUnavailable(fromThread)).toBe(true);
    expect(isUnavailable(new Error('the definitions changed'))).toBe(false);
    expect(isUnavailable('a string')).toBe(false);
  });
});

describe('retryStart', () => {
  const down = () => new StoreUnavailableError('Redis store at redis://x: PING failed');
  it('retries while the store is unavailable, then resolves with the result', async () => {
    const seen: StartRetry[] = [];
    let calls = 0;
    const started = await retryStart({
      first: down(),
      attempt: async () => {
        if (++calls < 3) throw down();
        return 'pool';
      },
      signal: new AbortController().signal,
      onRetry: (r) => seen.push(r),
      onFatal: () => expect.fail('not fatal'),
      firstDelayMs: 5,
    });
    expect(started).toBe('pool');
    expect(seen.map((r) => r.attempts)).toEqual([1, 2, 3]);
    expect(new Set(seen.map((r) => r.sinceMs)).size).toBe(1);
  });
  it('stops at an error a retry cannot fix, and at abort', async () => {
    const fatal: Error[] = [];
    const definitions = new Error('the definitions changed');
    const opts = { first: down(), onRetry: () => {}, onFatal: (e: Error) => fatal.push(e), firstDelayMs: 5 };
    expect(
      await retryStart({
        ...opts,
        attempt: () => Promise.reject(definitions),
        signal: new AbortController().signal,
      }),
    ).toBeNull();
    expect(fatal).toEqual([definitions]);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 30);
    expect(
      await retryStart({ ...opts, attempt: () => Promise.reject(down()), signal: abort.signal }),
    ).toBeNull();
    expect(fatal).toHaveLength(1);
  });
});
