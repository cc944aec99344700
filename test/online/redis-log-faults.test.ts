import { Redis } from 'ioredis';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventLog, LogEntry } from '../../src/online/log/event-log.ts';
import { AppendOutcomeUnknownError, LogUnavailableError } from '../../src/online/log/log-unavailable.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.ts';
import { serverGroup } from '../support/server-group.ts';
import { startNats, startRedis, startRedisCluster } from '../support/servers.ts';

/**
 * Faults of the Redis Streams (and NATS) log that must not duplicate an append or report a refusal that
 * passes as a 500: a Cluster link cut before an append's reply (the Cluster layer must not resend it), an
 * append issued while the client reconnects (it must not wait in ioredis' offline queue and be sent late),
 * a Redis that refuses for a while (OOM, BUSY) or a JetStream with no responders (503, nothing appended),
 * and idle readers of many partitions (they must not spin on XRANGE).
 */
const servers = serverGroup();
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await servers.stopAll();
});
const redis = await servers.start(startRedis());
const cluster = await servers.start(startRedisCluster(3));
const nats = await servers.start(startNats());

const entries = (tag: string, n: number): LogEntry[] =>
  Array.from({ length: n }, (_, i) => ({ partitionKey: 'u', event: { tag, i } }));
const track = (log: EventLog) => {
  cleanups.push(() => log.close());
  return log;
};
/** Events tagged `tag` in the stream `key` of `node`. */
async function copies(node: Redis, key: string, tag: string): Promise<number> {
  const raw = await node.xrange(key, '-', '+');
  return raw.filter(([, f]) => (JSON.parse(f[1]) as { tag: string }).tag === tag).length;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let prefixes = 0;

describe.skipIf(!cluster)('Redis Cluster: a link cut after Redis ran an append', () => {
  it('fails the append with an unknown outcome and does not send it again (applied once)', async () => {
    // Each master announces a cutting proxy's port: the client reaches every node through one.
    const proxies: CuttingProxy[] = [];
    const direct = cluster!.masters.map((m) => new Redis(m.port, '127.0.0.1'));
    cleanups.push(() => direct.forEach((d) => d.disconnect()));
    for (const [i, m] of cluster!.masters.entries()) {
      const proxy = await startCuttingProxy(m.port);
      cleanups.push(() => proxy.close());
      proxies.push(proxy);
      await direct[i].config('SET', 'cluster-announce-port', String(proxy.port));
    }
    // Other nodes learn an announced port by gossip: wait until every node's slot map names the proxies.
    const ports = proxies.map((p) => p.port).sort((a, b) => a - b);
    for (const deadline = Date.now() + 10_000; ; await sleep(50)) {
      const maps = await Promise.all(direct.map((d) => d.cluster('SLOTS')));
      const seen = maps.map((m) => m.map((r) => r[2][1]).sort((a, b) => a - b));
      if (seen.every((s) => String(s) === String(ports))) break;
      if (Date.now() > deadline)
        throw new Error(`masters still announce ${JSON.stringify(seen)}, not ${ports}`);
    }
    const url = `redis+cluster://${proxies.map((p) => `127.0.0.1:${p.port}`).join(',')}`;
    const prefix = `cut${prefixes++}:`;
    const log = track(openRedisStreamLog(url, { prefix, commandTimeoutMs: 2000 }));
    await log.append('t', entries('first', 1)); // loads the script: the cut one below is an EVALSHA
    const key = `${prefix}log:{t:0}`;
    // A node that does not serve the key's slot answers MOVED.
    const owner = (await Promise.all(direct.map((d) => d.exists(key).catch(() => 0)))).indexOf(1);
    proxies[owner].cutNextReply('evalsha');
    const cut = await log.append('t', entries('cut', 1)).then(
      () => null,
      (e: Error) => e,
    );
    await sleep(500); // ioredis' Cluster resend came 100 ms after the cut
    expect(proxies[owner].cuts).toBe(1);
    expect(await copies(direct[owner], key, 'cut')).toBe(1);
    expect(cut).toBeInstanceOf(AppendOutcomeUnknownError);
    // The log goes on: a new connection to the node, each event once.
    await log.append('t', entries('after', 2));
    expect(await copies(direct[owner], key, 'after')).toBe(2);
    for (const d of direct) await d.config('SET', 'cluster-announce-port', '0');
  }, 30_000);
});

describe.skipIf(!redis)('Redis Streams log while its client reconnects', () => {
  it('an append issued before the link is back fails "nothing was appended" and is never sent', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const direct = new Redis(redis!.port, '127.0.0.1');
    cleanups.push(() => direct.disconnect());
    const prefix = `rc${prefixes++}:`;
    const log = track(
      openRedisStreamLog(`redis://127.0.0.1:${proxy.port}`, { prefix, commandTimeoutMs: 1000 }),
    );
    await log.append('t', entries('before', 1));
    // The link drops; the client reconnects to a server that accepts but does not answer its handshake.
    proxy.holdNew();
    proxy.dropLinks();
    await sleep(200); // the client saw its link close and reconnects (an append sent before may be lost)
    const during = await Promise.all(
      [0, 1, 2].map((i) =>
        log.append('t', entries(`during${i}`, 1)).then(
          () => null,
          (e: Error) => e,
        ),
      ),
    );
    for (const e of during) {
      expect(e).toBeInstanceOf(LogUnavailableError);
      expect(e).not.toBeInstanceOf(AppendOutcomeUnknownError);
      expect(e!.message).toMatch(/nothing was appended/);
    }
    proxy.release();
    // Reads work again once reconnected, and the failed appends never arrive.
    const deadline = Date.now() + 10_000;
    let read: Awaited<ReturnType<EventLog['read']>> = [];
    while (Date.now() < deadline) {
      read = await log.read('t', 0, 0, 100).catch(() => []);
      if (read.length > 0) break;
      await sleep(50);
    }
    expect(read.map((r) => (r.event as { tag: string }).tag)).toEqual(['before']);
    await log.append('t', entries('after', 1));
    await sleep(300);
    const tags = (await log.read('t', 0, 0, 100)).map((r) => (r.event as { tag: string }).tag);
    expect(tags).toEqual(['before', 'after']);
  }, 30_000);
});

describe.skipIf(!redis)('Redis Streams log: refusals that pass are 503, nothing appended', () => {
  it('OOM and BUSY replies fail with LogUnavailableError; keys of something else stay a plain error', async () => {
    const direct = new Redis(redis!.port, '127.0.0.1');
    cleanups.push(() => direct.disconnect());
    const prefix = `tr${prefixes++}:`;
    const log = track(openRedisStreamLog(redis!.url, { prefix, commandTimeoutMs: 5000 }));
    await log.append('t', entries('ok', 1));
    const refused = async (tag: string) => {
      const e = await log.append('t', entries(tag, 2)).then(
        () => null,
        (err: Error) => err,
      );
      expect(e).toBeInstanceOf(LogUnavailableError);
      expect(e).not.toBeInstanceOf(AppendOutcomeUnknownError);
      expect((e as LogUnavailableError).statusCode).toBe(503);
      expect(e!.message).toMatch(/Nothing was appended/);
      return e!;
    };
    await direct.config('SET', 'maxmemory', '1');
    try {
      expect((await refused('oom')).message).toMatch(/OOM/);
    } finally {
      await direct.config('SET', 'maxmemory', '0');
    }
    // A long script makes Redis answer BUSY to everything else until it is killed.
    const busy = new Redis(redis!.port, '127.0.0.1');
    const killer = new Redis(redis!.port, '127.0.0.1'); // connected now: a new one's handshake gets BUSY
    cleanups.push(
      () => busy.disconnect(),
      () => killer.disconnect(),
    );
    await killer.ping();
    await direct.config('SET', 'busy-reply-threshold', '100');
    const spin = busy.eval('while true do end', 0).catch(() => {});
    await sleep(300);
    try {
      expect((await refused('busy')).message).toMatch(/BUSY/);
    } finally {
      await killer.script('KILL').catch(() => {});
      await spin;
      await direct.config('SET', 'busy-reply-threshold', '5000');
    }
    const tags = (await log.read('t', 0, 0, 100)).map((r) => (r.event as { tag: string }).tag);
    expect(tags).toEqual(['ok']);
    // Keys that are not a log partition: a plain error, not a 503 to retry.
    await direct.set(`${prefix}log:{u:0}`, 'x');
    const wrong = await log.append('u', entries('w', 1)).then(
      () => null,
      (e: Error) => e,
    );
    expect(wrong).not.toBeInstanceOf(LogUnavailableError);
    expect(wrong!.message).toMatch(/not a Tessera log partition/);
  }, 30_000);
});

describe.skipIf(!nats)('NATS JetStream log: no responders', () => {
  it('a stream gone (no responders) fails the append with 503, nothing appended; the next one recreates it', async () => {
    const log = track(openNatsLog(nats!.url, { prefix: `nr${prefixes++}` }));
    await log.append('t', entries('ok', 1));
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list())
      if (s.config.name.startsWith(`nr${prefixes - 1}_`)) await jsm.streams.delete(s.config.name);
    const e = await log.append('t', entries('gone', 2)).then(
      () => null,
      (err: Error) => err,
    );
    expect(e).toBeInstanceOf(LogUnavailableError);
    expect(e).not.toBeInstanceOf(AppendOutcomeUnknownError);
    expect(e!.message).toMatch(/no responders|503/i);
    await log.append('t', entries('again', 1));
    const tags = (await log.read('t', 0, 0, 100)).map((r) => (r.event as { tag: string }).tag);
    expect(tags).toEqual(['again']);
  }, 30_000);
});

describe.skipIf(!redis)('Redis Streams log: idle readers of many partitions', () => {
  it('do not spin on XRANGE while one of them holds the blocking connection', async () => {
    const direct = new Redis(redis!.port, '127.0.0.1');
    cleanups.push(() => direct.disconnect());
    const partitions = 4;
    const log = track(openRedisStreamLog(redis!.url, { prefix: `idle${prefixes++}:`, partitions }));
    const xranges = async () => {
      const info = await direct.info('commandstats');
      return Number(/cmdstat_xrange:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    let stop = false;
    const loops = Array.from({ length: partitions }, async (_, p) => {
      while (!stop) await log.read('t', p, 0, 100, 500); // as the stream worker reads an idle partition
    });
    await sleep(200);
    const before = await xranges();
    await sleep(1000);
    const calls = (await xranges()) - before;
    stop = true;
    await Promise.all(loops);
    // Blocking reader: ~2 a second; each of the 3 others: <= 2 per 50 ms poll. Spinning made thousands.
    expect(calls).toBeGreaterThan(10);
    expect(calls).toBeLessThan(200);
  }, 30_000);
});
