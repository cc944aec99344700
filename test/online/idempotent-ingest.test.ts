import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { DiscardPolicy, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import type { Row } from '../../src/define/types.ts';
import { ingestEvents, type IngestResult } from '../../src/online/ingest.ts';
import type { EventLog, LogEntry } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { encodeJsonFrame } from '../../src/online/log/frame.ts';
import {
  batchFingerprint,
  IdempotencyCapacityError,
  IdempotencyConflictError,
  IdempotencyUnsupportedError,
  idempotencyMaxKeysOption,
  idempotencyWindowOption,
} from '../../src/online/log/idempotency.ts';
import { AppendOutcomeUnknownError, LogUnavailableError } from '../../src/online/log/log-unavailable.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { logStreamToken } from '../../src/online/log/topic-token.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { serverGroup } from '../support/server-group.ts';
import { startNats, startRedis, startRedisCluster } from '../support/servers.ts';
import { byUser, events, groupBys, randomEvents, tempDir } from './fixtures.ts';

/**
 * Idempotent ingest (`idempotencyKey`): per log, a resend with the same key appends nothing and reports the
 * original offsets; another key appends; other events under a used key are refused (422) where the log can
 * tell; a resend after an append that reached some topics only appends exactly the rest; and a resend after
 * a lost reply (the broker applied the append, the client got "unknown outcome") is a replay.
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

const PARTITIONS = 2;
let names = 0;
const track = <T extends EventLog>(log: T): T => {
  cleanups.push(() => log.close());
  return log;
};

/** Every event of every partition of the source's topics, as `n` values per topic. */
async function contents(log: EventLog): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const t of streamTopics(events, groupBys, PARTITIONS)) {
    const ns: number[] = [];
    for (let p = 0; p < PARTITIONS; p++)
      for (const r of await log.read(t.name, p, 0, 100_000)) ns.push(r.event.amount as number);
    out.set(
      t.name,
      ns.sort((a, b) => a - b),
    );
  }
  return out;
}
/** A batch whose events are told apart by `amount` (distinct over all batches of a test). */
const batch = (seed: number, n: number, base: number): Row[] =>
  randomEvents(seed, n).map((e, i) => ({ ...e, amount: base + i }));
const amounts = (rows: readonly Row[]) => rows.map((r) => r.amount as number).sort((a, b) => a - b);
const ranges = (r: IngestResult) => r.offsets.map(({ replayed: _, ...range }) => range);

const logs: [string, boolean, () => EventLog][] = [
  [
    'file',
    true,
    () => {
      const dir = tempDir();
      cleanups.push(dir.remove);
      return openFileLog(dir.path, { partitions: PARTITIONS });
    },
  ],
  [
    'redis',
    redis !== null,
    () => openRedisStreamLog(redis!.url, { partitions: PARTITIONS, prefix: `idem${names++}:` }),
  ],
  [
    'redis cluster',
    cluster !== null,
    () => openRedisStreamLog(cluster!.url, { partitions: PARTITIONS, prefix: `idem${names++}:` }),
  ],
  ['nats', nats !== null, () => openNatsLog(nats!.url, { partitions: PARTITIONS, prefix: `idem${names++}` })],
];

for (const [name, available, open] of logs) {
  describe.skipIf(!available)(`idempotent ingest into the ${name} log`, () => {
    it('a resend with the same key appends nothing and reports the original offsets; another key appends', async () => {
      const log = track(open());
      const rows = batch(1, 40, 1000);
      const first = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k-1' });
      expect(first.replayed).toBe(false);
      expect(first.accepted).toBe(40);
      expect(first.offsets.every((r) => r.replayed === undefined)).toBe(true);
      const again = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k-1' });
      expect(again.replayed).toBe(true);
      expect(again.accepted).toBe(40);
      expect(again.offsets.every((r) => r.replayed === true)).toBe(true);
      expect(ranges(again)).toEqual(ranges(first));
      for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts(rows));
      // Another key is another batch, even with the same events.
      const other = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k-2' });
      expect(other.replayed).toBe(false);
      for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts([...rows, ...rows]));
      // No key: at-least-once, as before.
      await ingestEvents(log, events, groupBys, rows);
      for (const ns of (await contents(log)).values()) expect(ns).toHaveLength(120);
    }, 30_000);

    it('other events under a used key are refused (422) and append nothing', async () => {
      const log = track(open());
      const rows = batch(2, 30, 2000);
      await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'order 17' });
      const changed = rows.map((r, i) => (i === 3 ? { ...r, amount: 9999 } : r));
      const err = await ingestEvents(log, events, groupBys, changed, { idempotencyKey: 'order 17' }).catch(
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(IdempotencyConflictError);
      expect((err as IdempotencyConflictError).statusCode).toBe(422);
      expect((err as Error).message).toMatch(
        /^Idempotency-Key 'order 17' was already used .*with other events/,
      );
      for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts(rows));
    }, 30_000);

    it('a resend after an append that reached only some topics appends exactly the rest', async () => {
      const inner = track(open());
      // The log as ingest sees one without appendTopics (NATS, Redis Cluster): one append per topic, the
      // second failing before it is sent.
      let fail = true;
      const log: EventLog = {
        kind: inner.kind,
        partitions: inner.partitions,
        idempotentAppends: inner.idempotentAppends,
        append: (topic, e, o) => {
          if (fail && topic === topics[1]) return Promise.reject(new Error('broker gone'));
          return inner.append(topic, e, o);
        },
        read: (...args) => inner.read(...args),
        endOffsets: (topic) => inner.endOffsets(topic),
        close: async () => {},
      };
      const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);
      const rows = batch(3, 50, 3000);
      const err = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'part' }).catch(
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(AppendOutcomeUnknownError);
      expect((err as Error).message).toContain('resend the same events with the same key');
      expect((await contents(inner)).get(topics[1])).toEqual([]);
      fail = false;
      const retry = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'part' });
      expect(retry.replayed).toBe(true);
      expect(retry.appended).toBe(50); // the second topic's; the first one's were replayed
      expect(new Set(retry.offsets.filter((r) => r.replayed).map((r) => r.topic))).toEqual(
        new Set([topics[0]]),
      );
      expect(new Set(retry.offsets.filter((r) => !r.replayed).map((r) => r.topic))).toEqual(
        new Set([topics[1]]),
      );
      for (const ns of (await contents(inner)).values()) expect(ns).toEqual(amounts(rows));
      const third = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'part' });
      expect(third.offsets.every((r) => r.replayed)).toBe(true);
      expect(third.appended).toBe(0);
      expect(ranges(third)).toEqual(ranges(retry));
    }, 30_000);
  });
}

/**
 * A NATS log whose second topic's partition streams were created with a 1-minute max_age (below the
 * idempotency window); `fixWindow` lifts it.
 */
async function logWithShortSecondTopic() {
  const prefix = `idem${names++}`;
  const log = track(openNatsLog(nats!.url, { partitions: PARTITIONS, prefix }));
  const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);
  const nc = await connect({ servers: nats!.url });
  cleanups.push(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const token = logStreamToken(topics[1]);
  for (let p = 0; p < PARTITIONS; p++)
    await jsm.streams.add({
      name: `${prefix}_${token}_p${p}`,
      subjects: [`${prefix}.${token}.${p}`],
      storage: StorageType.File,
      max_age: nanos(60_000),
      duplicate_window: nanos(60_000),
    });
  const fixWindow = async () => {
    for (let p = 0; p < PARTITIONS; p++) await jsm.streams.update(`${prefix}_${token}_p${p}`, { max_age: 0 });
  };
  return { log, fixWindow };
}

describe('idempotency keys', () => {
  it('must be 1 to 200 printable ASCII characters', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const log = track(openFileLog(dir.path, { partitions: PARTITIONS }));
    for (const bad of ['', 'x'.repeat(201), 'caf\u00e9', 'a\nb']) {
      const err = await ingestEvents(log, events, groupBys, batch(4, 2, 0), { idempotencyKey: bad }).catch(
        (e: Error) => e,
      );
      expect((err as { statusCode?: number }).statusCode).toBe(400);
      expect((err as Error).message).toMatch(/^Idempotency-Key must be 1 to 200 printable ASCII characters/);
    }
    expect([...(await contents(log)).values()].flat()).toEqual([]);
  });

  it('are remembered for the window: the option, else TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h', () => {
    const saved = process.env.TESSERA_IDEMPOTENCY_WINDOW_MS;
    try {
      delete process.env.TESSERA_IDEMPOTENCY_WINDOW_MS;
      expect(idempotencyWindowOption(undefined, 'log')).toBe(86_400_000);
      expect(idempotencyWindowOption(5000, 'log')).toBe(5000);
      process.env.TESSERA_IDEMPOTENCY_WINDOW_MS = '60000';
      expect(idempotencyWindowOption(undefined, 'log')).toBe(60_000);
      process.env.TESSERA_IDEMPOTENCY_WINDOW_MS = '1h';
      expect(() => idempotencyWindowOption(undefined, 'log')).toThrow(
        'log: the idempotency window must be a positive integer (ms), got TESSERA_IDEMPOTENCY_WINDOW_MS=1h; omit it (and TESSERA_IDEMPOTENCY_WINDOW_MS) for the default 86400000 (24 h)',
      );
    } finally {
      if (saved === undefined) delete process.env.TESSERA_IDEMPOTENCY_WINDOW_MS;
      else process.env.TESSERA_IDEMPOTENCY_WINDOW_MS = saved;
    }
  });

  it('are refused by a log that cannot dedupe (Kafka, wrappers), before anything is appended', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const inner = track(openFileLog(dir.path, { partitions: PARTITIONS }));
    const log: EventLog = {
      kind: 'kafka',
      partitions: inner.partitions,
      append: (topic, e, o) => inner.append(topic, e, o),
      read: (...args) => inner.read(...args),
      endOffsets: (topic) => inner.endOffsets(topic),
      close: async () => {},
    };
    const err = await ingestEvents(log, events, groupBys, batch(5, 2, 0), { idempotencyKey: 'k' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyUnsupportedError);
    expect((err as Error).message).toMatch(
      /^the kafka event log cannot deduplicate appends.*--log embedded\|redis\|nats/,
    );
    expect([...(await contents(inner)).values()].flat()).toEqual([]);
  });
});

describe.skipIf(!redis)('the Redis Streams log losing the reply of a keyed append', () => {
  it('rejects with an unknown outcome; the resend with the key is a replay of the applied append', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const log = track(
      openRedisStreamLog(`redis://127.0.0.1:${proxy.port}`, {
        partitions: PARTITIONS,
        prefix: `idem-cut${names++}:`,
        commandTimeoutMs: 2000,
      }),
    );
    // Loads the keyed script, so that the cut one is an EVALSHA.
    await ingestEvents(log, events, groupBys, batch(6, 3, 0), { idempotencyKey: 'warm' });
    const rows = batch(7, 20, 5000);
    proxy.cutNextReply('evalsha');
    const lost = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'lost' }).catch(
      (e: Error) => e,
    );
    expect(proxy.cuts).toBe(1);
    expect(lost).toBeInstanceOf(AppendOutcomeUnknownError);
    let retry: IngestResult | null = null;
    for (let i = 0; i < 50 && retry === null; i++)
      retry = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'lost' }).catch(() => null);
    expect(retry!.replayed).toBe(true);
    expect(retry!.offsets.every((r) => r.replayed)).toBe(true);
    for (const ns of (await contents(log)).values())
      expect(ns.filter((n) => n >= 5000)).toEqual(amounts(rows));
  }, 30_000);
});

const httpLogs = [
  ['embedded', true, {}],
  ['redis', redis !== null, { log: 'redis', redisUrl: redis?.url, redisPrefix: `idem-http${names++}:` }],
] as const;

for (const [name, available, logOpts] of httpLogs) {
  describe.skipIf(!available)(`POST /v1/events/:source with Idempotency-Key (${name} log)`, () => {
    it('validates the header (400), replays a resend (replayed: true, same offsets), refuses other events (422)', async () => {
      const repo = await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
        checkFiles: false,
      });
      const dir = tempDir();
      cleanups.push(dir.remove);
      const server = await startEmbedded({
        repo,
        dataDir: join(dir.path, 'state'),
        port: 0,
        store: 'lmdb',
        workers: false,
        ...logOpts,
      });
      cleanups.push(() => server.close());
      const post = async (body: unknown, key?: string) => {
        const res = await fetch(`${server.url}/v1/events/payments`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(key === undefined ? {} : { 'idempotency-key': key }),
          },
          body: JSON.stringify(body),
        });
        return { code: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const rows = [
        { user_id: 'u1', amount: 3, ts: 1_700_000_000_000 },
        { user_id: 'u2', amount: 4, ts: 1_700_000_000_001 },
      ];
      for (const bad of ['x'.repeat(201), 'a\tb']) {
        const r = await post(rows, bad);
        expect(r.code).toBe(400);
        expect(r.body.message).toMatch(/^Idempotency-Key must be 1 to 200 printable ASCII characters/);
      }
      // Two headers (Node would join them into the one key 'b-1, b-2').
      const twice = await new Promise<{ code: number; body: string }>((resolve, reject) => {
        const req = httpRequest(
          `${server.url}/v1/events/payments`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': ['b-1', 'b-2'] },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ code: res.statusCode!, body }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(rows));
      });
      expect(twice.code).toBe(400);
      expect(JSON.parse(twice.body).message).toMatch(/^Idempotency-Key was sent 2 times; send it once/);
      const first = await post(rows, 'batch-1');
      expect(first.code).toBe(200);
      expect(first.body).toMatchObject({ source: 'payments', accepted: 2, replayed: false });
      const again = await post({ events: rows }, 'batch-1');
      expect(again.code).toBe(200);
      expect(again.body).toMatchObject({ source: 'payments', accepted: 2, replayed: true });
      const strip = (o: unknown) => (o as { replayed?: true }[]).map(({ replayed: _, ...range }) => range);
      expect(strip(again.body.offsets)).toEqual(strip(first.body.offsets));
      expect((again.body.offsets as { replayed?: true }[]).every((r) => r.replayed)).toBe(true);
      const conflict = await post([{ ...rows[0], amount: 5 }, rows[1]], 'batch-1');
      expect(conflict.code).toBe(422);
      expect(conflict.body.error).toBe('idempotency_conflict');
      expect(conflict.body.message).toMatch(
        /^Idempotency-Key 'batch-1' was already used .*with other events/,
      );
      // The typed client sends the header.
      const client = createClient({ url: server.url });
      expect(await client.ingest('payments', rows, { idempotencyKey: 'batch-1' })).toMatchObject({
        accepted: 2,
        replayed: true,
      });
      const other = await post(rows, 'batch-2');
      expect(other.body).toMatchObject({ accepted: 2, replayed: false });
      // One copy per key: the replay and the refused batch appended nothing (nor counted).
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/tessera_events_ingested_total\{source="payments"\} 4\b/);
    }, 30_000);
  });
}

/** Stops `pid` (SIGSTOP) and waits until its threads are stopped (the signal lands asynchronously). */
async function hang(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const tasks = `/proc/${pid}/task`;
  const state = (t: string) => {
    const stat = readFileSync(`${tasks}/${t}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  };
  for (let i = 0; i < 200 && !readdirSync(tasks).every((t) => /^[Tt]$/.test(state(t))); i++) await sleep(5);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const one = (n: number, base: number): LogEntry[] =>
  Array.from({ length: n }, (_, i) => ({ partitionKey: 'u', event: { n: base + i } }));
const ns = async (log: EventLog, topic: string) =>
  (await log.read(topic, 0, 0, 10_000)).map((r) => r.event.n as number);

describe.skipIf(!nats)('the NATS log with idempotency keys', () => {
  it('a resend after JetStream stored only some events of the batch stores exactly the rest', async () => {
    const prefix = `idem${names++}`;
    const log = track(openNatsLog(nats!.url, { prefix, timeoutMs: 5000 }));
    await log.append('t', one(2, 0), { idempotencyKey: 'setup' }); // creates the stream
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const stream = `${prefix}_t_p0`;
    // Room for 3 of the 8 events: JetStream refuses the rest.
    await jsm.streams.update(stream, { max_msgs: 5, discard: DiscardPolicy.New });
    const err = await log.append('t', one(8, 100), { idempotencyKey: 'b' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(AppendOutcomeUnknownError);
    expect((err as Error).message).toMatch(/JetStream confirmed 3 of the events, refused 5/);
    expect((err as Error).message).toContain('resend the same events with the same key');
    expect(await ns(log, 't')).toEqual([0, 1, 100, 101, 102]);
    await jsm.streams.update(stream, { max_msgs: -1 });
    const retry = await log.append('t', one(8, 100), { idempotencyKey: 'b' });
    expect(retry).toEqual([
      { partition: 0, first: 2, count: 3, replayed: true },
      { partition: 0, first: 5, count: 5 },
    ]);
    expect(await ns(log, 't')).toEqual([0, 1, 100, 101, 102, 103, 104, 105, 106, 107]);
    expect(await log.append('t', one(8, 100), { idempotencyKey: 'b' })).toEqual([
      { partition: 0, first: 2, count: 8, replayed: true },
    ]);
  }, 30_000);

  it('a stream created without the window gets it on its first keyed append, not on unkeyed ones', async () => {
    const prefix = `idem${names++}`;
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const stream = `${prefix}_t_p0`;
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.t.0`], storage: StorageType.File });
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(120e9); // JetStream's default
    const log = track(openNatsLog(nats!.url, { prefix, idempotencyWindowMs: 3_600_000 }));
    await log.append('t', one(1, 0));
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(120e9);
    await log.append('t', one(1, 0), { idempotencyKey: 'x' });
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(3_600_000 * 1e6);
    // A longer window set by an operator is kept.
    await jsm.streams.update(stream, { duplicate_window: nanos(7_200_000) });
    const other = track(openNatsLog(nats!.url, { prefix, idempotencyWindowMs: 3_600_000 }));
    await other.append('t', one(1, 0), { idempotencyKey: 'y' });
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(7_200_000 * 1e6);
  }, 30_000);

  it('a stream whose max_age is below the window refuses keyed appends, naming the fix; others append', async () => {
    const prefix = `idem${names++}`;
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const stream = `${prefix}_t_p0`;
    await jsm.streams.add({
      name: stream,
      subjects: [`${prefix}.t.0`],
      storage: StorageType.File,
      max_age: nanos(60_000),
      duplicate_window: nanos(60_000),
    });
    const log = track(openNatsLog(nats!.url, { prefix }));
    const err = await log.append('t', one(1, 0), { idempotencyKey: 'x' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(IdempotencyCapacityError);
    expect((err as IdempotencyCapacityError).statusCode).toBe(503);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^NATS JetStream log: the duplicate_window of stream '${stream}' could not be set to the idempotency window of 86400000 ms .*Raise the stream's max_age .*or lower TESSERA_IDEMPOTENCY_WINDOW_MS \\(it is 60000 ms now\\)`,
      ),
    );
    expect(await log.endOffsets('t')).toEqual([0]);
    expect(await log.append('t', one(1, 0))).toEqual([{ partition: 0, first: 0, count: 1 }]);
    // Asked again on the next keyed append: an operator's fix takes effect without a restart.
    await jsm.streams.update(stream, { max_age: 0 });
    expect(await log.append('t', one(1, 5), { idempotencyKey: 'x' })).toEqual([
      { partition: 0, first: 1, count: 1 },
    ]);
  }, 30_000);

  it('a window update JetStream does not answer (server hung) is unavailability, not a max_age refusal', async () => {
    const prefix = `idem${names++}`;
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: `${prefix}_t_p0`, subjects: [`${prefix}.t.0`], storage: StorageType.File });
    const log = track(openNatsLog(nats!.url, { prefix, timeoutMs: 300 }));
    for (let i = 0; ; i++) {
      // Finds the stream (its short window is widened by the first keyed append only).
      const warm = await log.append('t', one(1, 0)).catch((e: Error) => e);
      if (!(warm instanceof Error)) break;
      if (i > 20) throw warm;
    }
    await hang(nats!.pid);
    let err: unknown;
    try {
      err = await log.append('t', one(1, 1), { idempotencyKey: 'h' }).catch((e: Error) => e);
    } finally {
      process.kill(nats!.pid, 'SIGCONT');
    }
    expect(err).toBeInstanceOf(LogUnavailableError);
    expect(err).not.toBeInstanceOf(IdempotencyCapacityError);
    expect((err as Error).message).toMatch(/Nothing was appended; resend the batch with the same key/);
    expect((err as Error).message).not.toMatch(/max_age/);
    let ok: unknown;
    for (let i = 0; i < 20; i++) {
      ok = await log.append('t', one(1, 1), { idempotencyKey: 'h' }).catch((e: Error) => e);
      if (!(ok instanceof Error)) break;
      await sleep(100);
    }
    expect(ok).toEqual([{ partition: 0, first: 1, count: 1 }]);
  }, 30_000);

  it('a claims stream JetStream refuses to create is a lasting 503 naming it, not "resend"', async () => {
    const prefix = `idem${names++}`;
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    // Another stream captures the claims' subjects: JetStream refuses the claims stream for good.
    await jsm.streams.add({
      name: `${prefix}-squat`,
      subjects: [`${prefix}_idem.>`],
      storage: StorageType.File,
    });
    const log = track(openNatsLog(nats!.url, { prefix }));
    const err = await log.append('t', one(1, 0), { idempotencyKey: 'c' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(IdempotencyCapacityError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `JetStream refused to set up the idempotency claims stream '${prefix}_idem'.*nothing was appended`,
      ),
    );
    expect((err as Error).message).not.toMatch(/resend/);
    expect(await log.endOffsets('t')).toEqual([0]);
  }, 30_000);

  it('another batch under a key that stored part of its batch is refused before publishing anything', async () => {
    const prefix = `idem${names++}`;
    const log = track(openNatsLog(nats!.url, { prefix, partitions: 2, timeoutMs: 5000 }));
    await log.append('t', [{ partitionKey: 'u', event: { n: -1 } }]); // creates the streams
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const p = partitionOf('u', 2);
    const stream = `${prefix}_t_p${p}`;
    const at = (base: number, key = 'u') =>
      Array.from({ length: 2 }, (_, i): LogEntry => ({ partitionKey: key, event: { n: base + i } }));
    const read = async () => {
      const out: number[] = [];
      for (const q of [0, 1]) for (const r of await log.read('t', q, 0, 100)) out.push(r.event.n as number);
      return out.sort((x, y) => x - y);
    };
    // Batch A (events 10, 11): room for one of them.
    await jsm.streams.update(stream, { max_msgs: 2, discard: DiscardPolicy.New });
    const partial = await log.append('t', at(10), { idempotencyKey: 'K' }).catch((e: Error) => e);
    expect(partial).toBeInstanceOf(AppendOutcomeUnknownError);
    await jsm.streams.update(stream, { max_msgs: -1 });
    expect(await read()).toEqual([-1, 10]);
    // Batch B under K, same partition, and another one landing in the other partition: 422, nothing stored.
    const otherKey = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].find((k) => partitionOf(k, 2) !== p)!;
    // Told by the claim stored in JetStream, not by this process' memory of it.
    const other = track(openNatsLog(nats!.url, { prefix, partitions: 2, timeoutMs: 5000 }));
    for (const b of [at(20), at(30, otherKey)]) {
      const err = await other.append('t', b, { idempotencyKey: 'K' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(IdempotencyConflictError);
      expect((err as Error).message).toMatch(
        /^Idempotency-Key 'K' was already used for topic 't' with other events; nothing was appended/,
      );
    }
    expect(await read()).toEqual([-1, 10]);
    // A's resend stores exactly its missing event.
    const retry = await log.append('t', at(10), { idempotencyKey: 'K' });
    expect(retry).toEqual([
      { partition: p, first: 1, count: 1, replayed: true },
      { partition: p, first: 2, count: 1 },
    ]);
    expect(await read()).toEqual([-1, 10, 11]);
    // Another key with A's events is another batch (its ids differ).
    expect(await log.append('t', at(10), { idempotencyKey: 'K2' })).toEqual([
      { partition: p, first: 3, count: 2 },
    ]);
  }, 30_000);

  it('a claim stored whose events were never published (lost): the resend publishes them all', async () => {
    const prefix = `idem${names++}`;
    const log = track(openNatsLog(nats!.url, { prefix, timeoutMs: 5000 }));
    await log.checkKeyedAppend!([{ topic: 't', entries: one(3, 0) }], { idempotencyKey: 'c' });
    expect(await log.endOffsets('t')).toEqual([0]);
    expect(await log.append('t', one(3, 0), { idempotencyKey: 'c' })).toEqual([
      { partition: 0, first: 0, count: 3 },
    ]);
    expect(await log.append('t', one(3, 0), { idempotencyKey: 'c' })).toEqual([
      { partition: 0, first: 0, count: 3, replayed: true },
    ]);
  }, 30_000);

  it('an append whose acknowledgements were lost (server hung) is a replay when resent with its key', async () => {
    const prefix = `idem${names++}`;
    const log = track(openNatsLog(nats!.url, { prefix, timeoutMs: 300 }));
    const ok = track(openNatsLog(nats!.url, { prefix, timeoutMs: 5000 }));
    for (let i = 0; ; i++) {
      const warm = await log.append('t', one(1, 0), { idempotencyKey: 'warm' }).catch((e: Error) => e);
      if (!(warm instanceof Error)) break;
      if (i > 20) throw warm;
    }
    const base = (await ok.endOffsets('t'))[0];
    // Claimed first (as ingest does), so only the events' acknowledgements are lost.
    await log.checkKeyedAppend!([{ topic: 't', entries: one(10, 100) }], { idempotencyKey: 'lost' });
    await hang(nats!.pid);
    let lost: unknown;
    try {
      lost = await log.append('t', one(10, 100), { idempotencyKey: 'lost' }).catch((e: Error) => e);
    } finally {
      process.kill(nats!.pid, 'SIGCONT');
    }
    expect(lost).toBeInstanceOf(AppendOutcomeUnknownError);
    // The server had the events and stores them once it resumes.
    for (let i = 0; i < 100 && (await ok.endOffsets('t'))[0] < base + 10; i++) await sleep(50);
    expect((await ok.endOffsets('t'))[0]).toBe(base + 10);
    const retry = await ok.append('t', one(10, 100), { idempotencyKey: 'lost' });
    expect(retry).toEqual([{ partition: 0, first: base, count: 10, replayed: true }]);
    expect((await ns(ok, 't')).slice(base)).toEqual(one(10, 100).map((e) => e.event.n));
  }, 30_000);
});

describe.skipIf(!cluster)('keyed ingest into a Redis Cluster log whose second topic holds the key', () => {
  it('422 before the first topic is appended', async () => {
    const log = track(
      openRedisStreamLog(cluster!.url, { partitions: PARTITIONS, prefix: `idem-two${names++}:` }),
    );
    const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);
    const rows = batch(19, 20, 8000);
    // Another batch under the key in every partition of the second topic.
    await log.append(
      topics[1],
      rows.slice(0, 10).map((event, i) => ({ partitionKey: `p${i}`, event })),
      {
        idempotencyKey: 'two',
      },
    );
    const err = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'two' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyConflictError);
    expect((err as Error).message).toContain(`for topic '${topics[1]}'`);
    expect((err as Error).message).toContain('nothing was appended');
    expect((await contents(log)).get(topics[0])).toEqual([]);
  }, 30_000);

  it("reads each partition's record once: the appends skip the read ingest's check just made", async () => {
    const log = track(
      openRedisStreamLog(cluster!.url, { partitions: PARTITIONS, prefix: `idem-reads${names++}:` }),
    );
    const direct = cluster!.masters.map((m) => new Redis(m.port, '127.0.0.1'));
    cleanups.push(() => direct.forEach((d) => d.disconnect()));
    const gets = async () => {
      let n = 0;
      for (const d of direct)
        n += Number(/cmdstat_get:calls=(\d+)/.exec(await d.info('commandstats'))?.[1] ?? 0);
      return n;
    };
    const rows = batch(21, 20, 8500);
    await ingestEvents(log, events, groupBys, batch(22, 20, 8600)); // connects to every master
    const before = await gets();
    const r = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'once' });
    const parts = new Set(r.offsets.map((o) => `${o.topic}/${o.partition}`)).size;
    expect(parts).toBeGreaterThan(2);
    // Per partition: the check's read and the script's two (counter, record); was one more (a second read).
    expect((await gets()) - before).toBe(3 * parts);
    for (const ns of (await contents(log)).values())
      expect(ns).toEqual(amounts([...batch(22, 20, 8600), ...rows]));
  }, 30_000);
});

describe.skipIf(!nats)('keyed ingest into a NATS log that refuses the second topic', () => {
  it('a key holding another batch in the second topic only: 422 before the first topic is appended', async () => {
    const log = track(openNatsLog(nats!.url, { partitions: PARTITIONS, prefix: `idem${names++}` }));
    const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);
    const rows = batch(15, 20, 8000);
    await log.append(topics[1], [{ partitionKey: 'x', event: rows[0] }], { idempotencyKey: 'two' });
    const err = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'two' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyConflictError);
    expect((err as Error).message).toContain(`for topic '${topics[1]}'`);
    expect((await contents(log)).get(topics[0])).toEqual([]);
  }, 30_000);

  it("a second topic's stream whose max_age is below the window: 503 naming the fix, nothing appended, works once fixed", async () => {
    const { log, fixWindow } = await logWithShortSecondTopic();
    const rows = batch(16, 20, 9000);
    const err = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'w' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyCapacityError);
    expect((err as IdempotencyCapacityError).statusCode).toBe(503);
    expect((err as Error).message).toMatch(/Raise the stream's max_age to at least the window/);
    for (const ns of (await contents(log)).values()) expect(ns).toEqual([]);
    await fixWindow();
    const ok = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'w' });
    expect(ok).toMatchObject({ replayed: false, appended: 20 });
    for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts(rows));
  }, 30_000);

  it('a refused window on the second topic leaves the first topic unclaimed: another batch under the key appends', async () => {
    const { log, fixWindow } = await logWithShortSecondTopic();
    const err = await ingestEvents(log, events, groupBys, batch(17, 20, 9100), { idempotencyKey: 'v' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyCapacityError);
    await fixWindow();
    // Nothing holds the key: the refused batch never claimed it, so another batch under it is new.
    const other = batch(18, 20, 9200);
    const ok = await ingestEvents(log, events, groupBys, other, { idempotencyKey: 'v' });
    expect(ok).toMatchObject({ replayed: false, appended: 20 });
    for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts(other));
  }, 30_000);
});

describe('keyed ingest refused by a later topic', () => {
  it('says what was appended, without also saying nothing was', async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const inner = track(openFileLog(dir.path, { partitions: PARTITIONS }));
    const topics = streamTopics(events, groupBys, PARTITIONS).map((t) => t.name);
    // A log appending per topic whose second topic refuses the key (as after a race with another batch).
    const log: EventLog = Object.create(inner, {
      appendTopics: { value: undefined },
      append: {
        value: (topic: string, entries: readonly LogEntry[], opts?: { idempotencyKey?: string }) =>
          topic === topics[0]
            ? inner.append(topic, entries, opts)
            : Promise.reject(new IdempotencyConflictError('k', `for topic '${topic}'`)),
      },
    });
    const err = await ingestEvents(log, events, groupBys, batch(20, 5, 9300), { idempotencyKey: 'k' }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyConflictError);
    expect((err as IdempotencyConflictError).statusCode).toBe(422);
    const message = (err as Error).message;
    expect(message).toContain(
      `Idempotency-Key 'k' was already used for topic '${topics[1]}' with other events; the batch of 5 events of source '${events.name}' had been appended to topic(s) '${topics[0]}', nothing to '${topics[1]}'`,
    );
    expect(message).not.toMatch(/nothing was appended/);
  });
});

describe('the file log with idempotency keys', () => {
  it('remembers keys across reopening (rebuilt from the journal and its checkpoint) for the window only', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const rows = batch(8, 30, 7000);
    let log = openFileLog(dir.path, { partitions: PARTITIONS });
    const first = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k' });
    await log.close();
    // Twice: the first reopen rebuilds the index from the journal and rewrites it as a checkpoint, the
    // second reads the checkpoint.
    for (let i = 0; i < 2; i++) {
      log = openFileLog(dir.path, { partitions: PARTITIONS });
      const again = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k' });
      expect(again.replayed).toBe(true);
      expect(ranges(again)).toEqual(ranges(first));
      const conflict = await ingestEvents(log, events, groupBys, rows.slice(1), {
        idempotencyKey: 'k',
      }).catch((e: Error) => e);
      expect(conflict).toBeInstanceOf(IdempotencyConflictError);
      await log.close();
    }
    // A log with a window that has passed forgets the key: the same key appends again.
    log = track(openFileLog(dir.path, { partitions: PARTITIONS, idempotencyWindowMs: 1 }));
    await sleep(5);
    const later = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'k' });
    expect(later.replayed).toBe(false);
    for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts([...rows, ...rows]));
  });

  it('keeps at most maxKeys keys: a new key that would push out one within the window is refused (503)', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    let log = openFileLog(dir.path, { partitions: PARTITIONS, idempotencyMaxKeys: 2 });
    const rows = batch(9, 3, 0);
    for (const k of ['a', 'b']) await ingestEvents(log, events, groupBys, rows, { idempotencyKey: k });
    const full = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'c' }).catch(
      (e: Error) => e,
    );
    expect(full).toBeInstanceOf(IdempotencyCapacityError);
    expect((full as IdempotencyCapacityError).statusCode).toBe(503);
    expect((full as Error).message).toMatch(
      /it remembers at most 2 idempotency keys \(TESSERA_IDEMPOTENCY_MAX_KEYS\) and all are within the idempotency window of 86400000 ms .*nothing was appended.*Raise TESSERA_IDEMPOTENCY_MAX_KEYS/,
    );
    // The keys it has still replay; unkeyed appends go on.
    expect((await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'a' })).replayed).toBe(true);
    await ingestEvents(log, events, groupBys, rows);
    for (const ns of (await contents(log)).values()) expect(ns).toHaveLength(9);
    await log.close();
    // Once the window has passed for the old keys there is room again.
    log = track(
      openFileLog(dir.path, { partitions: PARTITIONS, idempotencyMaxKeys: 2, idempotencyWindowMs: 1 }),
    );
    await sleep(5);
    expect((await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'c' })).replayed).toBe(false);
  });

  it('the key cap comes from the option, else TESSERA_IDEMPOTENCY_MAX_KEYS; 0 or a non-number is refused', () => {
    const saved = process.env.TESSERA_IDEMPOTENCY_MAX_KEYS;
    const dir = tempDir();
    cleanups.push(dir.remove);
    try {
      for (const bad of ['0', 'lots', '-5', '1.5']) {
        process.env.TESSERA_IDEMPOTENCY_MAX_KEYS = bad;
        expect(() => openFileLog(dir.path)).toThrow(
          `the most idempotency keys to remember must be a positive integer, got TESSERA_IDEMPOTENCY_MAX_KEYS=${bad}; omit it (and TESSERA_IDEMPOTENCY_MAX_KEYS) for the default 100000`,
        );
      }
      delete process.env.TESSERA_IDEMPOTENCY_MAX_KEYS;
      expect(() => openFileLog(dir.path, { idempotencyMaxKeys: 0 })).toThrow(/got 0;/);
      expect(idempotencyMaxKeysOption(undefined, 100_000, 'log')).toBe(100_000);
      process.env.TESSERA_IDEMPOTENCY_MAX_KEYS = '500000';
      expect(idempotencyMaxKeysOption(undefined, 100_000, 'log')).toBe(500_000);
      expect(idempotencyMaxKeysOption(7, 100_000, 'log')).toBe(7);
    } finally {
      if (saved === undefined) delete process.env.TESSERA_IDEMPOTENCY_MAX_KEYS;
      else process.env.TESSERA_IDEMPOTENCY_MAX_KEYS = saved;
    }
  });

  it('reopening keeps a journal holding live keys as it is (no checkpoint rewrite); its compact records replay', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const journal = join(dir.path, '.ingest-journal');
    let log = openFileLog(dir.path, { partitions: 8 });
    const rows = batch(17, 40, 0);
    const first = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'keep' });
    await log.close();
    const before = statSync(journal);
    log = openFileLog(dir.path, { partitions: 8 });
    await log.recover!();
    const after = statSync(journal);
    expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
    const again = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'keep' });
    expect(again.offsets).toEqual(first.offsets.map((r) => ({ ...r, replayed: true })));
    await log.close();
  });

  it('replays a key recorded with ranges (the record of the first idempotent file logs)', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const parts = ['a', 'b'].map((topic) => ({ topic, entries: one(3, 0) }));
    const ranges = [[{ partition: 0, first: 0, count: 3 }], [{ partition: 0, first: 0, count: 3 }]];
    const record = { k: 'a,b\u0000old', f: batchFingerprint(parts), at: Date.now(), r: ranges };
    writeFileSync(join(dir.path, '.ingest-journal'), encodeJsonFrame({ parts: [], once: [record] }, 0));
    const log = track(openFileLog(dir.path, { partitions: 1 }));
    expect(await log.appendTopics!(parts, { idempotencyKey: 'old' })).toEqual(
      ranges.map((r) => r.map((range) => ({ ...range, replayed: true }))),
    );
    expect(await log.endOffsets('a')).toEqual([0]);
  });

  it('concurrent sends with one key (one group commit) append once', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const log = track(openFileLog(dir.path, { partitions: PARTITIONS }));
    const rows = batch(10, 10, 0);
    const all = await Promise.all(
      [0, 1, 2].map(() => ingestEvents(log, events, groupBys, rows, { idempotencyKey: 'same' })),
    );
    expect(all.map((r) => r.replayed)).toEqual([false, true, true]);
    for (const ns of (await contents(log)).values()) expect(ns).toEqual(amounts(rows));
  });
});

describe.skipIf(!redis)('the Redis Streams log on a single Redis with idempotency keys', () => {
  it('keeps one short record per keyed batch, whatever its topics, partitions and key length', async () => {
    const prefix = `idem-rec${names++}:`;
    const log = track(openRedisStreamLog(redis!.url, { partitions: 8, prefix }));
    const direct = new Redis(redis!.port, '127.0.0.1');
    cleanups.push(() => direct.disconnect());
    const rows = batch(18, 40, 0);
    const key = 'k'.repeat(200);
    const first = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: key });
    expect(new Set(first.offsets.map((r) => r.partition)).size).toBeGreaterThan(4);
    const records = (await direct.keys(`${prefix}*`)).filter((k) => !/^.*log:\{.*\}(:next)?$/.test(k));
    expect(records).toHaveLength(1);
    expect(records[0].length).toBeLessThan(prefix.length + 30);
    expect(Number(await direct.call('MEMORY', 'USAGE', records[0]))).toBeLessThan(200);
    const again = await ingestEvents(log, events, groupBys, rows, { idempotencyKey: key });
    expect(again.offsets).toEqual(first.offsets.map((r) => ({ ...r, replayed: true })));
    const err = await ingestEvents(log, events, groupBys, rows.slice(1), { idempotencyKey: key }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(IdempotencyConflictError);
  }, 30_000);
});

describe.skipIf(!cluster)('the Redis Streams log on a Cluster with one master refusing (OOM)', () => {
  it('a keyed append that reached the other masters is completed by its resend, each event once', async () => {
    const direct = cluster!.masters.map((m) => new Redis(m.port, '127.0.0.1'));
    cleanups.push(() => direct.forEach((d) => d.disconnect()));
    const prefix = `idem-oom${names++}:`;
    const partitions = 12;
    const log = track(openRedisStreamLog(cluster!.url, { partitions, prefix, commandTimeoutMs: 5000 }));
    const rows: LogEntry[] = Array.from({ length: 60 }, (_, i) => ({
      partitionKey: `u${i}`,
      event: { n: i },
    }));
    await log.append('warm', rows); // the same events unkeyed: the counts each partition should get
    // The master owning partition 0's slot refuses writes.
    const slot = Number(await direct[0].call('CLUSTER', 'KEYSLOT', `${prefix}log:{t:0}`));
    const ranges = await direct[0].cluster('SLOTS');
    const port = ranges.find(([lo, hi]) => lo <= slot && slot <= hi)![2][1];
    const oom = direct[cluster!.masters.findIndex((m) => m.port === port)];
    await oom.config('SET', 'maxmemory', '1');
    let err: unknown;
    try {
      err = await log.append('t', rows, { idempotencyKey: 'k' }).catch((e: Error) => e);
    } finally {
      await oom.config('SET', 'maxmemory', '0');
    }
    expect(err).toBeInstanceOf(AppendOutcomeUnknownError);
    expect((err as Error).message).toMatch(/has an unknown outcome \(it did reach 't' partition \d+/);
    const before = await log.endOffsets('t');
    expect(before[0]).toBe(0);
    expect(before.filter((n) => n > 0).length).toBeGreaterThan(0);
    const retry = await log.append('t', rows, { idempotencyKey: 'k' });
    for (const r of retry) expect(r.replayed === true).toBe(before[r.partition] > 0);
    expect(await log.endOffsets('t')).toEqual(await log.endOffsets('warm'));
    const again = await log.append('t', rows, { idempotencyKey: 'k' });
    expect(again.every((r) => r.replayed)).toBe(true);
    expect(await log.endOffsets('t')).toEqual(await log.endOffsets('warm'));
  }, 30_000);
});

describe('the file log failing after journaling a batch', () => {
  it('rejects it as an unknown outcome (not "nothing appended"): the next append writes it, its resend replays', async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const log = track(openFileLog(dir.path));
    // A batch past the journal's trim size (16 MiB), whose trim then fails: the journal's temporary file
    // cannot be created.
    const big = Array.from(
      { length: 17_000 },
      (_, i): LogEntry => ({
        partitionKey: 'u',
        event: { n: i, pad: 'x'.repeat(1000) },
      }),
    );
    mkdirSync(join(dir.path, '.ingest-journal.tmp'));
    const err = await log.append('t', big, { idempotencyKey: 'j' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(AppendOutcomeUnknownError);
    expect((err as Error).message).toMatch(/the append failed after its batch was journaled \(.*EISDIR/);
    expect((err as Error).message).toContain('resend the same events with the same key');
    rmSync(join(dir.path, '.ingest-journal.tmp'), { recursive: true });
    expect(await log.append('t', one(1, -1))).toEqual([{ partition: 0, first: 17_000, count: 1 }]);
    expect(await log.append('t', big, { idempotencyKey: 'j' })).toEqual([
      { partition: 0, first: 0, count: 17_000, replayed: true },
    ]);
  }, 60_000);
});

describe('the file log with idempotency keys, after a crash', () => {
  /** The one segment file of partition 0 of `topic`. */
  const segment = (dir: string, topic: string) => {
    const d = join(dir, topic, 'p0');
    const path = join(d, readdirSync(d)[0]);
    return { path, size: statSync(path).size };
  };
  const [topic] = streamTopics(events, [byUser], 1).map((t) => t.name);

  it('a key journaled with its batch whose frame a crash cut off: recovery writes the batch, a resend replays', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    let log = openFileLog(dir.path, { partitions: 1 });
    await ingestEvents(log, events, [byUser], batch(11, 5, 0));
    const cut = segment(dir.path, topic).size;
    const rows = batch(12, 7, 100);
    const first = await ingestEvents(log, events, [byUser], rows, { idempotencyKey: 'c' });
    await log.close();
    truncateSync(segment(dir.path, topic).path, cut); // killed after the journal's fdatasync
    log = track(openFileLog(dir.path, { partitions: 1 }));
    const again = await ingestEvents(log, events, [byUser], rows, { idempotencyKey: 'c' });
    expect(again.replayed).toBe(true);
    expect(ranges(again)).toEqual(ranges(first));
    expect((await log.read(topic, 0, 0, 100)).map((r) => r.event.amount)).toEqual([
      0, 1, 2, 3, 4, 100, 101, 102, 103, 104, 105, 106,
    ]);
  });

  it('a torn journal frame (killed before its fdatasync) holds neither the batch nor its key: a resend appends', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    let log = openFileLog(dir.path, { partitions: 1 });
    await ingestEvents(log, events, [byUser], batch(13, 5, 0), { idempotencyKey: 'warm' });
    const journal = join(dir.path, '.ingest-journal');
    const [cutSegment, cutJournal] = [segment(dir.path, topic).size, statSync(journal).size];
    const rows = batch(14, 4, 100);
    await ingestEvents(log, events, [byUser], rows, { idempotencyKey: 't' });
    await log.close();
    truncateSync(segment(dir.path, topic).path, cutSegment);
    truncateSync(journal, cutJournal + 20); // part of the frame's header and payload
    log = track(openFileLog(dir.path, { partitions: 1 }));
    const again = await ingestEvents(log, events, [byUser], rows, { idempotencyKey: 't' });
    expect(again.replayed).toBe(false);
    expect(
      (await ingestEvents(log, events, [byUser], batch(13, 5, 0), { idempotencyKey: 'warm' })).replayed,
    ).toBe(true);
    expect((await log.read(topic, 0, 0, 100)).map((r) => r.event.amount)).toEqual([
      0, 1, 2, 3, 4, 100, 101, 102, 103,
    ]);
  });
});
