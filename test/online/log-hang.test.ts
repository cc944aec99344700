import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog, LogEntry } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import {
  AppendOutcomeUnknownError,
  LogUnavailableError,
  scaledTimeout,
  timeoutOption,
} from '../../src/online/log/log-unavailable.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { Redis } from 'ioredis';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { serverGroup } from '../support/server-group.ts';
import { freePort, startNats, startRedis, startRedisCluster, type TestServer } from '../support/servers.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

/**
 * A broker that hangs (SIGSTOP) fails the event log's commands within their reply timeout instead of hanging
 * them: a read or endOffsets can be retried (the stream worker does, and loses or duplicates nothing); an
 * append rejects with `AppendOutcomeUnknownError` (it may still be applied once the broker resumes, which
 * these tests show happening), and HTTP ingest answers 503 saying so. XREAD BLOCK waits are not cut short.
 */
const servers = serverGroup();
const pids: number[] = [];
const cleanups: (() => void)[] = [];
afterAll(async () => {
  for (const pid of pids) process.kill(pid, 'SIGCONT');
  await servers.stopAll();
  for (const c of cleanups) c();
});
const redis = await servers.start(startRedis());
const nats = await servers.start(startNats());
const cluster = await servers.start(startRedisCluster(3));
for (const s of [redis, nats, ...(cluster?.masters ?? [])]) if (s) pids.push(s.pid);

/** Reply timeout of the logs whose broker hangs: short, so the tests fail fast. */
const TIMEOUT_MS = 300;
/** Reply timeout of healthy traffic (setup, checks): a loaded machine can take longer than TIMEOUT_MS. */
const HEALTHY_MS = 2000;
let prefix = 0;
const entries = (n: number, from = 0): LogEntry[] =>
  Array.from({ length: n }, (_, i) => ({ partitionKey: `u${i}`, event: { user: `u${i}`, n: from + i } }));

/**
 * Stops `pid` (SIGSTOP) and waits until every thread of it is stopped: the signal lands asynchronously, and
 * a busy server's running thread could otherwise still answer a request sent just after the kill.
 */
async function hang(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const tasks = `/proc/${pid}/task`;
  if (!existsSync(tasks)) return void (await new Promise((r) => setTimeout(r, 100)));
  const stopped = () =>
    readdirSync(tasks).every((t) => {
      const stat = readFileSync(`${tasks}/${t}/stat`, 'utf8');
      return /^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
    });
  for (let i = 0; i < 200 && !stopped(); i++) await new Promise((r) => setTimeout(r, 5));
}

/** Runs `fn` with `server` stopped (SIGSTOP), continuing it afterwards whatever happens. */
async function whileHung<T>(server: TestServer, fn: () => Promise<T>): Promise<T> {
  await hang(server.pid);
  try {
    return await fn();
  } finally {
    process.kill(server.pid, 'SIGCONT');
  }
}

/** What `promise` settles to (its error, or value) and after how many ms. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value: T | Error }> {
  const t = Date.now();
  const value = await promise.catch((e: Error) => e);
  return { ms: Date.now() - t, value };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `op()`, tried again while it fails with a reply timeout (a broker just resumed, or a loaded machine),
 * for up to 10 s.
 */
async function eventually<T>(op: () => Promise<T>): Promise<T> {
  for (const deadline = Date.now() + 10_000; ; await sleep(50)) {
    try {
      return await op();
    } catch (e) {
      if (Date.now() > deadline || !/no reply|no answer|timeout|timed out/i.test((e as Error).message))
        throw e;
    }
  }
}

const brokers = [
  [
    'redis',
    redis,
    (name = `hang${prefix++}`, timeoutMs = TIMEOUT_MS) =>
      openRedisStreamLog(redis!.url, { commandTimeoutMs: timeoutMs, prefix: `${name}:` }),
  ],
  [
    'nats',
    nats,
    (name = `hang${prefix++}`, timeoutMs = TIMEOUT_MS) => openNatsLog(nats!.url, { timeoutMs, prefix: name }),
  ],
] as const;

for (const [kind, server, open] of brokers) {
  describe.skipIf(!server)(`the ${kind} log with its broker hung`, () => {
    it('an append rejects within the timeout, its outcome unknown (it is applied once the broker resumes)', async () => {
      const name = `hang${prefix++}`;
      const log = open(name);
      const ok = open(name, HEALTHY_MS); // setup and checks
      try {
        // Through `log` (NATS: it then knows its stream exists, and creates none while the broker hangs).
        await eventually(() => log.append('t', entries(3)));
        const base = sum(await ok.endOffsets('t')); // 3, or more if a try timed out and was applied
        const { ms, value } = await whileHung(server!, () => timed(log.append('t', entries(10, 3))));
        expect(ms).toBeLessThan(TIMEOUT_MS + 1500);
        expect(value).toBeInstanceOf(AppendOutcomeUnknownError);
        expect((value as AppendOutcomeUnknownError).statusCode).toBe(503);
        expect((value as Error).message).toMatch(
          new RegExp(
            `^.* log at ${server!.url}: append of 10 events to topic(\\(s\\))? 't' has an unknown outcome.*no reply within 300 ms\\. Its events may or may not be in the log.*resending the batch may store them twice`,
          ),
        );
        // The broker had the append and applied it after all: why resending blindly would duplicate.
        let end = 0;
        for (let i = 0; i < 100 && end !== base + 10; i++) {
          end = sum(await ok.endOffsets('t'));
          if (end !== base + 10) await sleep(50);
        }
        expect(end).toBe(base + 10);
        expect((await ok.read('t', 0, base, 100)).map((r) => r.event.n)).toEqual(
          Array.from({ length: 10 }, (_, i) => 3 + i),
        );
        expect(await ok.append('t', entries(1, 13))).toEqual([{ partition: 0, first: base + 10, count: 1 }]);
      } finally {
        await Promise.all([log.close(), ok.close()]);
      }
    }, 20_000);

    it('reads (waiting or not) and endOffsets fail within the timeout, and work again once it resumes', async () => {
      const name = `hang${prefix++}`;
      const log = open(name);
      const ok = open(name, HEALTHY_MS);
      try {
        await ok.append('t', entries(5));
        await whileHung(server!, async () => {
          for (const [what, op, bound] of [
            ['read', () => log.read('t', 0, 0, 10), TIMEOUT_MS],
            ['read', () => log.read('t', 0, 5, 10, 1000), 1000 + TIMEOUT_MS],
            ['endOffsets', () => log.endOffsets('t'), TIMEOUT_MS],
          ] as const) {
            const { ms, value } = await timed<unknown>(op());
            // NATS: a read that fails also removes its consumer, which gets its own timeout.
            expect(ms).toBeLessThan(2 * bound + 1500);
            expect(value).toBeInstanceOf(Error);
            expect((value as Error).message).toMatch(
              new RegExp(`log at ${server!.url}: ${what}.* failed: .*(no reply|no answer|timeout)`),
            );
          }
        });
        // The same log works again (a resumed broker may answer its first commands late: tried again).
        expect((await eventually(() => log.read('t', 0, 0, 10))).map((r) => r.event.n)).toEqual([
          0, 1, 2, 3, 4,
        ]);
        expect(await eventually(() => log.endOffsets('t'))).toEqual([5]);
      } finally {
        await Promise.all([log.close(), ok.close()]);
      }
    }, 30_000);

    it('a waiting read is not cut short by the reply timeout', async () => {
      const name = `hang${prefix++}`;
      const log = open(name, HEALTHY_MS);
      const writer = open(name, HEALTHY_MS);
      const wait = HEALTHY_MS + 500; // longer than the reply timeout
      try {
        await log.append('t', entries(1));
        await log.read('t', 0, 1, 10); // NATS: its consumer exists before the timed wait
        let r = await timed(log.read('t', 0, 1, 10, wait));
        expect(r.value).toEqual([]);
        expect(r.ms).toBeGreaterThanOrEqual(wait - 50);
        const appended = sleep(wait).then(() => writer.append('t', entries(1, 1)));
        r = await timed(log.read('t', 0, 1, 10, 4 * wait));
        await appended;
        expect(r.value).toEqual([{ offset: 1, event: { user: 'u0', n: 1 } }]);
        expect(r.ms).toBeGreaterThanOrEqual(wait - 50);
      } finally {
        await Promise.all([log.close(), writer.close()]);
      }
    }, 30_000);

    it('a stream worker reading a hung log reports failed steps, then applies every event once', async () => {
      const name = `hang${prefix++}`;
      const log = open(name);
      const ok = open(name, HEALTHY_MS);
      const dir = tempDir();
      cleanups.push(dir.remove);
      const store = openStore({ kind: 'lmdb', path: dir.path });
      const [topic] = streamTopics(events, groupBys, 1);
      const all = randomEvents(41, 300);
      await ingestEvents(ok, events, groupBys, all);
      const errors: string[] = [];
      try {
        const w = await eventually(() =>
          createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 }),
        );
        await w.step().catch((e: Error) => errors.push(e.message)); // a loaded machine may time it out
        await hang(server!.pid);
        setTimeout(() => process.kill(server!.pid, 'SIGCONT'), 5 * TIMEOUT_MS);
        while (w.stats().nextOffset < 300) {
          try {
            await w.step();
          } catch (err) {
            errors.push((err as Error).message);
            if (errors.length > 30) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        expect(errors.length).toBeGreaterThanOrEqual(1);
        for (const e of errors) expect(e).toMatch(/no reply|no answer|timeout/);
        await expectUsersMatchOracle(store, all);
      } finally {
        process.kill(server!.pid, 'SIGCONT');
        await Promise.all([log.close(), ok.close()]);
        await store.close();
      }
    }, 30_000);
  });
}

describe.skipIf(!redis)('HTTP ingest with a hung Redis Streams log', () => {
  it('answers 503 within about the timeout, saying the outcome is unknown; 200 once Redis resumes', async () => {
    const repo = await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
      checkFiles: false,
    });
    const dir = tempDir();
    cleanups.push(dir.remove);
    const saved = process.env.TESSERA_REDIS_TIMEOUT_MS;
    process.env.TESSERA_REDIS_TIMEOUT_MS = String(TIMEOUT_MS);
    const server = await startEmbedded({
      repo,
      dataDir: join(dir.path, 'state'),
      port: 0,
      store: 'lmdb',
      log: 'redis',
      redisUrl: redis!.url,
      redisPrefix: `hang-http${prefix++}:`,
      workers: false,
    }).finally(() => {
      if (saved === undefined) delete process.env.TESSERA_REDIS_TIMEOUT_MS;
      else process.env.TESSERA_REDIS_TIMEOUT_MS = saved;
    });
    const post = async () => {
      const t = Date.now();
      const res = await fetch(`${server.url}/v1/events/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ user_id: 'u1', amount: 3, ts: 1_700_000_000_000 }]),
        signal: AbortSignal.timeout(10_000),
      });
      return { ms: Date.now() - t, code: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    /** Posts until 200: on a loaded machine a healthy append may miss the short timeout (503). */
    const postUntilOk = async () => {
      for (let i = 0; i < 20; i++) if ((await post()).code === 200) return;
      throw new Error('no 200 in 20 posts');
    };
    try {
      await postUntilOk();
      const down = await whileHung(redis!, post);
      expect(down.code).toBe(503);
      expect(down.ms).toBeLessThan(TIMEOUT_MS + 2000);
      expect(down.body.error).toBe('unavailable');
      expect(down.body.message).toMatch(
        new RegExp(
          `^Redis Streams log at ${redis!.url}: append of 1 events to topic\\(s\\) '[^']+' has an unknown outcome: no reply within 300 ms\\. Its events may or may not be in the log .*resending the batch may store them twice.*TESSERA_REDIS_TIMEOUT_MS`,
        ),
      );
      await postUntilOk();
    } finally {
      await server.close();
    }
  }, 30_000);
});

describe.skipIf(!cluster)('the Redis Streams log on a Cluster with one master hung', () => {
  it('an append that reached the other masters rejects naming where it got; resumed, each event is there once', async () => {
    const log = openRedisStreamLog(cluster!.url, {
      partitions: 6,
      commandTimeoutMs: TIMEOUT_MS,
      prefix: 'hc:',
    });
    const ok = openRedisStreamLog(cluster!.url, {
      partitions: 6,
      commandTimeoutMs: HEALTHY_MS,
      prefix: 'hc:',
    });
    const probe = new Redis(cluster!.masters[0].port, '127.0.0.1');
    try {
      await ok.append('t', entries(1));
      await eventually(() => log.endOffsets('t')); // the client has the slot map
      // The master serving partition 0's stream, and the partitions the other masters serve.
      const slots = await probe.cluster('SLOTS');
      const portOf = async (p: number) => {
        const slot = (await probe.cluster('KEYSLOT', `hc:log:{t:${p}}`)) as number;
        return slots.find(([from, to]) => from <= slot && slot <= to)![2][1];
      };
      const ports = await Promise.all(Array.from({ length: 6 }, (_, p) => portOf(p)));
      const hung = cluster!.masters.find((m) => m.port === ports[0])!;
      const elsewhere = ports.flatMap((port, p) => (port === hung.port ? [] : [p]));
      expect(elsewhere.length).toBeGreaterThan(0);
      const batch = entries(60, 1);
      const { ms, value } = await whileHung(hung, () => timed(log.append('t', batch)));
      expect(ms).toBeLessThan(TIMEOUT_MS + 1500);
      expect(value).toBeInstanceOf(AppendOutcomeUnknownError);
      const reached = /\(it did reach (.*)\): no reply within 300 ms/.exec((value as Error).message);
      expect(reached?.[1].split(', ')).toEqual(elsewhere.map((p) => `'t' partition ${p}`));
      // Resumed, the hung master applies its part: every event once, none twice.
      let end = 0;
      for (let i = 0; i < 100 && end !== 61; i++) {
        end = sum(await ok.endOffsets('t'));
        if (end !== 61) await sleep(50);
      }
      expect(end).toBe(61);
      const got = (await Promise.all(Array.from({ length: 6 }, (_, p) => ok.read('t', p, 0, 100)))).flatMap(
        (records) => records.map((r) => r.event.n as number),
      );
      expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 61 }, (_, i) => i));
    } finally {
      probe.disconnect();
      await Promise.all([log.close(), ok.close()]);
    }
  }, 30_000);
});

describe.skipIf(!redis)('the Redis Streams log when a link fails before an append is confirmed', () => {
  it('the append rejects, its outcome unknown; the client does not resend it (no duplicate)', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    const log = openRedisStreamLog(`redis://127.0.0.1:${proxy.port}`, {
      commandTimeoutMs: HEALTHY_MS,
      prefix: `cut${prefix++}:`,
    });
    try {
      await log.append('t', entries(1));
      proxy.cutNextReply();
      const { value } = await timed(log.append('t', entries(5, 1)));
      expect(proxy.cuts).toBe(1);
      // Redis ran the script; resent after the reconnect, it would run again and "succeed".
      expect(value).toBeInstanceOf(AppendOutcomeUnknownError);
      expect((value as Error).message).toMatch(/append of 5 events to topic\(s\) 't' has an unknown outcome/);
      await sleep(200);
      expect(await log.endOffsets('t')).toEqual([6]);
      expect(await log.append('t', entries(1, 6))).toEqual([{ partition: 0, first: 6, count: 1 }]);
    } finally {
      await log.close();
      await proxy.close();
    }
  }, 20_000);
});

describe.skipIf(!nats)('the NATS log before its server is up', () => {
  it('an append fails at once (503, nothing appended), and works once the server is up, without reopening', async () => {
    const port = await freePort();
    const log = openNatsLog(`nats://127.0.0.1:${port}`, { timeoutMs: HEALTHY_MS, prefix: 'late' });
    const dir = tempDir();
    cleanups.push(dir.remove);
    let server: ReturnType<typeof spawn> | null = null;
    try {
      const { ms, value } = await timed(log.append('t', entries(2)));
      expect(ms).toBeLessThan(HEALTHY_MS + 1500);
      expect(value).toBeInstanceOf(LogUnavailableError);
      expect(value).not.toBeInstanceOf(AppendOutcomeUnknownError);
      expect((value as Error).message).toMatch(
        /^NATS JetStream log: cannot connect to nats:\/\/127\.0\.0\.1:\d+: .*Start nats-server with JetStream/,
      );
      server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir.path], {
        stdio: 'ignore',
      });
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await log.append('t', entries(2)).catch((e: Error) => e);
        if (!(r instanceof Error)) {
          expect(r).toEqual([{ partition: 0, first: 0, count: 2 }]);
          break;
        }
        expect(r).toBeInstanceOf(LogUnavailableError);
        if (Date.now() > deadline) throw r;
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await log.close();
      server?.kill('SIGKILL');
    }
  }, 30_000);
});

describe('log reply timeouts', () => {
  it('come from the option, else the environment, else the default, and must be positive integers', () => {
    const env = 'TESSERA_TEST_LOG_TIMEOUT_MS';
    try {
      expect(timeoutOption(undefined, env, 5000, 'log')).toBe(5000);
      process.env[env] = '700';
      expect(timeoutOption(undefined, env, 5000, 'log')).toBe(700);
      expect(timeoutOption(250, env, 5000, 'log')).toBe(250);
      process.env[env] = '2s';
      expect(() => timeoutOption(undefined, env, 5000, 'NATS JetStream log at nats://h:1')).toThrow(
        `NATS JetStream log at nats://h:1: the reply timeout must be a positive integer (ms), got ${env}=2s; omit it (and ${env}) for the default 5000`,
      );
      expect(() => timeoutOption(0, env, 5000, 'log')).toThrow('got 0;');
    } finally {
      delete process.env[env];
    }
    expect([0, 1, 25_000, 25_001, 100_000, Infinity].map((n) => scaledTimeout(2000, n))).toEqual([
      2000,
      2000,
      2000,
      4000,
      8000,
      2 ** 31 - 1,
    ]);
  });
});

describe('ingest into a log without appendTopics', () => {
  it('an append failing after another topic took the batch is an unknown outcome naming both', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const inner = openFileLog(dir.path, { partitions: 2 });
    let appends = 0;
    const log: EventLog = {
      kind: inner.kind,
      partitions: inner.partitions,
      append: (topic, e) => {
        if (++appends === 2) return Promise.reject(new Error('broker gone'));
        return inner.append(topic, e);
      },
      read: (...args) => inner.read(...args),
      endOffsets: (topic) => inner.endOffsets(topic),
      close: () => inner.close(),
    };
    const topics = streamTopics(events, groupBys, 2).map((t) => t.name);
    expect(topics).toHaveLength(2);
    try {
      const err = await ingestEvents(log, events, groupBys, randomEvents(5, 10)).catch((e: Error) => e);
      expect(err).toBeInstanceOf(AppendOutcomeUnknownError);
      expect(err).toBeInstanceOf(LogUnavailableError);
      expect((err as Error).message).toBe(
        `the batch of 10 events of source 'events' was appended to topic(s) '${topics[0]}', but not (or not surely) to '${topics[1]}': broker gone. Its events may or may not be in the log (or be added once the broker resumes): resending the batch may store them twice, and features would count those twice. Resend once the broker answers if duplicates are acceptable; otherwise check which events arrived first.`,
      );
      // A failure of the first topic's append is the log's own error: nothing was appended.
      appends = 1;
      const first = await ingestEvents(log, events, groupBys, randomEvents(6, 10)).catch((e: Error) => e);
      expect((first as Error).message).toBe('broker gone');
    } finally {
      await log.close();
    }
  });
});
