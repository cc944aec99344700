/**
 * One deadline per Redis Streams log operation: the wait for a ready connection (a Cluster's slot map, a
 * node's connection coming back) uses up part of it, so an append or read fails within about one reply
 * timeout (TESSERA_REDIS_TIMEOUT_MS) of its call, not that wait plus the timeout (up to 10 s on a Cluster).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { AppendOutcomeUnknownError, LogUnavailableError } from '../../src/online/log/log-unavailable.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { REDIS_TIMEOUT_ENV } from '../../src/online/redis-client.ts';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { freePort, startRedis } from '../support/servers.ts';

const redis = await startRedis();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await redis?.stop();
});

const TIMEOUT = 500;
/** Opens a log with TESSERA_REDIS_TIMEOUT_MS = TIMEOUT (read when the log opens). */
function openLog(url: string) {
  const was = process.env[REDIS_TIMEOUT_ENV];
  process.env[REDIS_TIMEOUT_ENV] = String(TIMEOUT);
  try {
    const log = openRedisStreamLog(url);
    cleanups.push(() => log.close());
    return log;
  } finally {
    if (was === undefined) delete process.env[REDIS_TIMEOUT_ENV];
    else process.env[REDIS_TIMEOUT_ENV] = was;
  }
}

const entry = { partitionKey: 'k', event: { user: 'u', ts: 1 } };
async function timed(op: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await op.then(
    () => null,
    (e: unknown) => e,
  );
  return { error, ms: performance.now() - started };
}

describe.skipIf(!redis)('a Redis Streams log operation gets one deadline in all', () => {
  it('on an unreachable Redis Cluster: append, read and endOffsets fail within one timeout', async () => {
    const log = openLog(`redis+cluster://127.0.0.1:${await freePort()}`);
    const append = await timed(log.append('t', [entry]));
    expect(append.error).toBeInstanceOf(LogUnavailableError);
    expect((append.error as Error).message).toMatch(/Redis Cluster not ready within 500 ms/);
    expect(append.ms).toBeLessThan(TIMEOUT + 200);
    for (const op of [log.read('t', 0, 0, 10), log.endOffsets('t')]) {
      const { error, ms } = await timed(op);
      expect((error as Error).message).toMatch(/Redis Cluster not ready within 500 ms/);
      expect(ms).toBeLessThan(TIMEOUT + 200);
    }
  });

  it('on a single Redis back late and holding writes: an append fails one timeout after its call', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const admin = new Redis(redis!.url);
    cleanups.push(() => admin.disconnect());
    const log = openLog(`redis://127.0.0.1:${proxy.port}`);
    await log.endOffsets('t'); // connected
    // The link drops; the reconnect hangs until 150 ms in, when Redis is back but holds writes.
    proxy.holdNew();
    proxy.dropLinks();
    await new Promise((r) => setTimeout(r, 50)); // the client sees its link closed
    setTimeout(() => void admin.client('PAUSE', 3000, 'WRITE').then(() => proxy.release()), 150);
    const { error, ms } = await timed(log.append('t', [entry]));
    await admin.client('UNPAUSE');
    // Sent once connected, at 150 ms, with what was left of its 500 ms.
    expect(error).toBeInstanceOf(AppendOutcomeUnknownError);
    expect((error as Error).message).toMatch(/no reply within 500 ms/);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 10);
    expect(ms).toBeLessThan(TIMEOUT + 200);
  });
  it('an append ready with less than half its timeout left is not sent: nothing appended', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const admin = new Redis(redis!.url);
    cleanups.push(() => admin.disconnect());
    const log = openLog(`redis://127.0.0.1:${proxy.port}`);
    await log.endOffsets('late'); // connected
    // The reconnect takes 400 ms of the append's 500: sent then, its script would run in Redis (here once
    // Redis stops holding writes) while the append failed without a reply, its outcome unknown.
    proxy.holdNew();
    proxy.dropLinks();
    await new Promise((r) => setTimeout(r, 50));
    setTimeout(() => void admin.client('PAUSE', 1000, 'WRITE').then(() => proxy.release()), 400);
    const { error, ms } = await timed(log.append('late', [entry]));
    expect(error).toBeInstanceOf(LogUnavailableError);
    expect(error).not.toBeInstanceOf(AppendOutcomeUnknownError);
    expect((error as Error).message).toMatch(
      /ready too late: \d+ ms of the 500 ms reply timeout left, under the 250 ms a script needs to be sent; nothing was appended/,
    );
    expect(ms).toBeLessThan(TIMEOUT);
    await admin.client('UNPAUSE');
    await new Promise((r) => setTimeout(r, 100));
    expect(await admin.exists('tessera:log:{late:0}')).toBe(0);
    expect(await log.endOffsets('late')).toEqual([0]);
  });
});
