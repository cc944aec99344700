/**
 * Waiting for a ready Redis connection (redis-client.ts `untilConnected`, `untilReady`): any number of
 * concurrent waiters share one pair of listeners (one each would print Node's MaxListenersExceededWarning
 * past 10, e.g. appends waiting out an outage), all settle when the server is back, on their limit or when
 * the client closes, and leave no listener behind. A `Deadline` shared by the wait and the reply bounds both
 * together.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { LogUnavailableError } from '../../src/online/log/log-unavailable.ts';
import {
  Deadline,
  openRedisClient,
  untilConnected,
  untilReady,
  withDeadline,
  type RedisClient,
} from '../../src/online/redis-client.ts';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { freePort, startRedis } from '../support/servers.ts';

const redis = await startRedis();
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => void process.on('warning', onWarning));
beforeEach(() => void (warnings.length = 0));
afterAll(async () => {
  process.off('warning', onWarning);
  for (const c of cleanups) await c();
  await redis?.stop();
});

const N = 50;
const listeners = (c: RedisClient) => c.listenerCount('ready') + c.listenerCount('end');
const tooMany = () => warnings.filter((w) => w.name === 'MaxListenersExceededWarning');

/** A client of nothing yet: a free port nobody listens on. */
async function downClient(cluster = false): Promise<{ client: RedisClient; port: number }> {
  const port = await freePort();
  const client = openRedisClient(`redis${cluster ? '+cluster' : ''}://127.0.0.1:${port}`);
  cleanups.push(() => client.disconnect());
  return { client, port };
}

/** Starts redis-server on `port` (a server coming back). */
async function redisOn(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', ''], {
    stdio: 'ignore',
  });
  cleanups.push(() => void child.kill('SIGKILL'));
  return child;
}

describe.skipIf(!redis)('waiting for a ready Redis connection', () => {
  it(`${N} concurrent waiters during an outage share one wait and all resolve once the server is back`, async () => {
    const { client, port } = await downClient();
    const before = listeners(client);
    const settled: string[] = [];
    const waits = Array.from({ length: N }, (_, i) =>
      untilConnected(client as Redis, 10_000)!.then(
        () => settled.push(`ok ${i}`),
        (e: Error) => settled.push(e.message),
      ),
    );
    expect(listeners(client) - before).toBeLessThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toEqual([]);
    await redisOn(port);
    await Promise.all(waits);
    expect(settled.sort()).toEqual(Array.from({ length: N }, (_, i) => `ok ${i}`).sort());
    expect(client.status).toBe('ready');
    expect(listeners(client)).toBe(before);
    expect(untilConnected(client as Redis, 100)).toBeNull();
    expect(tooMany()).toEqual([]);
  });

  it(`${N} concurrent waiters reject on their limit, or when the client closes, leaving no listener`, async () => {
    const { client } = await downClient();
    const before = listeners(client);
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) => untilConnected(client as Redis, i < N / 2 ? 200 : 400)),
    );
    const took = performance.now() - started;
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual([
      ...Array.from({ length: N / 2 }, () => expect.stringMatching(/^not connected to Redis within 200 ms/)),
      ...Array.from({ length: N / 2 }, () => expect.stringMatching(/^not connected to Redis within 400 ms/)),
    ]);
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(1000);
    expect(listeners(client)).toBe(before);
    // A client that ends (here: it does not reconnect) fails its waiters at once.
    const once = new Redis(`redis://127.0.0.1:${await freePort()}`, {
      lazyConnect: true,
      retryStrategy: () => null,
    });
    once.on('error', () => {});
    const ending = Array.from({ length: N }, () =>
      untilConnected(once, 10_000)!.then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    );
    expect(await Promise.all(ending)).toEqual(
      Array.from({ length: N }, () => 'the connection to Redis closed'),
    );
    expect(listeners(once)).toBe(0);
    expect(tooMany()).toEqual([]);
  });

  it(`${N} concurrent waiters for an unreachable Redis Cluster share one wait (untilReady)`, async () => {
    const { client } = await downClient(true);
    const before = listeners(client);
    const waits = Array.from({ length: N }, () => untilReady(client, 300));
    expect(listeners(client) - before).toBeLessThanOrEqual(2);
    for (const w of waits) await expect(w).rejects.toThrow(/Redis Cluster not ready within 300 ms/);
    expect(listeners(client)).toBe(before);
    expect(tooMany()).toEqual([]);
  });

  it(`${N} concurrent appends to a Redis Streams log that is down fail within one deadline, no warning`, async () => {
    const port = await freePort();
    const log = openRedisStreamLog(`redis://127.0.0.1:${port}`, { commandTimeoutMs: 300 });
    cleanups.push(() => log.close());
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        log.append('t', [{ partitionKey: `k${i}`, event: { user: `u${i}`, ts: 1 } }]),
      ),
    );
    const took = performance.now() - started;
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(LogUnavailableError);
    }
    expect(took).toBeLessThan(600);
    expect(tooMany()).toEqual([]);
  });

  it('a Deadline shared by the connection wait and the reply bounds both together', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const admin = new Redis(redis!.url);
    cleanups.push(() => void admin.disconnect());
    const client = openRedisClient(`redis://127.0.0.1:${proxy.port}`, { resendAfterReconnect: false });
    cleanups.push(() => client.disconnect());
    await client.ping();
    // An outage: the link drops and the reconnect hangs until 500 ms in; then the server is back but holds
    // writes (CLIENT PAUSE WRITE), so a write sent then gets no reply.
    const outage = async () => {
      proxy.holdNew();
      proxy.dropLinks();
      if (client.status === 'ready') await new Promise((r) => client.once('close', r));
    };
    const timed = async (limit: () => number | Deadline) => {
      const started = performance.now();
      setTimeout(() => {
        void admin.client('PAUSE', 3000, 'WRITE').then(() => proxy.release());
      }, 500);
      const d = limit();
      const error = await (async () => {
        await untilConnected(client as Redis, d);
        await withDeadline(client.set('k', 'v'), d);
      })().then(
        () => null,
        (e: Error) => e,
      );
      await admin.client('UNPAUSE');
      return { error, ms: performance.now() - started };
    };
    await outage();
    const shared = await timed(() => new Deadline(1000));
    expect(shared.error?.message).toBe('no reply within 1000 ms');
    expect(shared.ms).toBeGreaterThanOrEqual(990);
    expect(shared.ms).toBeLessThan(1250);
    // Each step with its own 1000 ms: ~1500 ms in all.
    await outage();
    const separate = await timed(() => 1000);
    expect(separate.error?.message).toBe('no reply within 1000 ms');
    expect(separate.ms).toBeGreaterThan(1400);
  });
});
