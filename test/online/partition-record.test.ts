import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openKafkaLog } from '../../src/online/log/kafka-log.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { PartitionCountMismatchError } from '../../src/online/log/partition-record.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { freePort, startNats, startRedis, startRedisOn, type TestServer } from '../support/servers.ts';
import { randomEvents, tempDir } from './fixtures.ts';
import { FakeKafka } from './kafka-fake.ts';

/**
 * A shared log (Redis Streams, NATS) records its deployment's partition count, and every process appending
 * to or reading it checks its own `--partitions` against it. Before, a `tessera serve --no-workers
 * --partitions 4` node on a 2-partition deployment appended to partitions 2 and 3, answered 200, and no
 * worker ever read them (lag 0); a node without `--partitions` appended to partition 0 of a topic no
 * 2-partition worker reads.
 */
const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
const redis = await startRedis();
const nats = await startNats();
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await redis?.stop();
  await nats?.stop();
});

let names = 0;
const kafka = new FakeKafka();
const logs: [string, TestServer | null, (partitions: number, prefix: string) => EventLog][] = [
  [
    'Redis Streams',
    redis,
    (partitions, prefix) => openRedisStreamLog(redis!.url, { partitions, prefix: `${prefix}:` }),
  ],
  ['NATS JetStream', nats, (partitions, prefix) => openNatsLog(nats!.url, { partitions, prefix })],
  [
    'Kafka (in-process fake)',
    { url: 'fake:9092' } as TestServer,
    (partitions, prefix) => openKafkaLog(['fake:9092'], { partitions, prefix, client: kafka.client() }),
  ],
];

describe.each(logs)('%s log: checkPartitionCount', (_name, server, open) => {
  const opened: EventLog[] = [];
  const log = (partitions: number, prefix: string) => {
    const l = open(partitions, prefix);
    opened.push(l);
    return l;
  };
  afterAll(async () => {
    for (const l of opened) await l.close();
  });

  it.skipIf(!server)(
    'records the first count; refuses another, naming both counts, the log and the fix',
    async () => {
      const prefix = `rec${names++}`;
      await log(2, prefix).checkPartitionCount!();
      await log(2, prefix).checkPartitionCount!(); // the same count starts
      for (const other of [4, 1]) {
        const e = await log(other, prefix).checkPartitionCount!().then(
          () => null,
          (x: Error) => x,
        );
        expect(e).toBeInstanceOf(PartitionCountMismatchError);
        expect(e!.message).toContain('deployment of 2 partitions');
        expect(e!.message).toContain(`--partitions ${other}`);
        expect(e!.message).toContain('Start it with --partitions 2');
        expect(e!.message).toContain(server!.url);
        expect(e!.message).toMatch(
          /If the record is what is wrong .*, stop every process of the deployment, delete the /,
        );
      }
    },
  );

  it.skipIf(!server)(
    'a log from before the record (events, no record) records the count at first check',
    async () => {
      const prefix = `legacy${names++}`;
      const old = log(3, prefix);
      await old.append('t', [{ partitionKey: 'a', event: { x: 1 } }]);
      await old.checkPartitionCount!();
      await expect(log(3, prefix).checkPartitionCount!()).resolves.toBeUndefined();
      await expect(log(1, prefix).checkPartitionCount!()).rejects.toThrow(/deployment of 3 partitions/);
    },
  );

  it.skipIf(!server)(
    'of processes checking at once with different counts, those of one count start',
    async () => {
      const prefix = `race${names++}`;
      const counts = [1, 2, 3, 1, 2, 3];
      const results = await Promise.all(
        counts.map((n) =>
          log(n, prefix).checkPartitionCount!().then(
            () => n,
            (e: Error) => {
              if (!(e instanceof PartitionCountMismatchError)) throw e;
              return null;
            },
          ),
        ),
      );
      const started = results.filter((n) => n !== null);
      expect(started.length).toBe(2);
      expect(new Set(started).size).toBe(1);
    },
  );
});

/** A repo of the online fixtures' `events` source and a replay file of `n` of its events. */
function repoWithReplay(n: number): { repo: string; replay: string } {
  const dir = tempDir();
  cleanups.push(dir.remove);
  writeFileSync(join(dir.path, 'defs.ts'), `export { events, byUser } from ${JSON.stringify(fixtures)};\n`);
  const replay = join(dir.path, 'replay.jsonl');
  writeFileSync(
    replay,
    randomEvents(7, n)
      .map((e) => JSON.stringify(e))
      .join('\n'),
  );
  return { repo: dir.path, replay };
}

const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 90_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout: string; stderr: string }) => ({
      code: e.code ?? -1,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

/** Runs `tessera serve` until it prints its banner (then stops it: code 0) or exits (its code). */
function serveUntilBanner(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'serve', ...args], { stdio: 'pipe' });
    let stderr = '';
    let stdout = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('tessera serving')) child.kill('SIGTERM');
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: stdout.includes('tessera serving') ? 0 : (code ?? -1), stderr });
    });
  });
}

describe.skipIf(!nats)('tessera serve --no-workers on a NATS log', () => {
  it(
    'refuses a --partitions other than the deployment (given or default), starts with it',
    { timeout: 120_000 },
    async () => {
      const { repo, replay } = repoWithReplay(50);
      const data = tempDir();
      cleanups.push(data.remove);
      const common = ['--repo', repo, '--log', 'nats', '--nats-url', nats!.url];
      // The deployment: a replay with its workers on 2 partitions records the count.
      const first = await tessera([
        'stream',
        ...common,
        '--data-dir',
        join(data.path, 'a'),
        '--partitions',
        '2',
        '--replay',
        replay,
      ]);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      // The last: a node with workers, refused as well.
      for (const args of [['--no-workers', '--partitions', '4'], ['--no-workers'], ['--partitions', '3']]) {
        const port = await freePort();
        const node = await serveUntilBanner([
          ...common,
          '--data-dir',
          join(data.path, 'b'),
          '--port',
          String(port),
          ...args,
        ]);
        expect(node.code).toBe(1);
        expect(node.stderr).toContain('deployment of 2 partitions');
        expect(node.stderr).toContain(`--partitions ${args.at(-1) === '--no-workers' ? 1 : args.at(-1)}`);
        expect(node.stderr).toContain('Start it with --partitions 2');
        expect(node.stderr).toContain(nats!.url);
      }
      const ok = await serveUntilBanner([
        ...common,
        '--no-workers',
        '--data-dir',
        join(data.path, 'c'),
        '--port',
        String(await freePort()),
        '--partitions',
        '2',
      ]);
      expect(ok).toEqual({ code: 0, stderr: '' });
    },
  );
});

describe.skipIf(!redis)('tessera stream on a Redis Streams log', () => {
  it(
    'refuses a replay or workers with another --partitions, appending nothing',
    { timeout: 120_000 },
    async () => {
      const { repo, replay } = repoWithReplay(40);
      const data = tempDir();
      cleanups.push(data.remove);
      const common = ['--repo', repo, '--log', 'redis', '--redis', redis!.url, '--redis-prefix', 'cli-rec:'];
      const first = await tessera([
        'stream',
        ...common,
        '--data-dir',
        join(data.path, 'a'),
        '--partitions',
        '2',
        '--replay',
        replay,
      ]);
      expect(first.code).toBe(0);
      expect(first.stdout).toContain('appended 40 events');
      const client = new Redis(redis!.url);
      cleanups.push(() => client.quit());
      const streams = async () =>
        (await client.keys('cli-rec:log:{*')).filter((k) => !k.endsWith(':next')).sort();
      const before = await streams();
      expect(before.length).toBe(2);

      for (const args of [
        ['--partitions', '4', '--replay', replay, '--allow-duplicates'],
        ['--replay', replay, '--allow-duplicates'],
        ['--partitions', '3', '--follow'],
      ]) {
        const r = await tessera(['stream', ...common, '--data-dir', join(data.path, 'b'), ...args]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('deployment of 2 partitions');
        expect(r.stderr).toContain("key 'cli-rec:log:partitions'");
        expect(r.stderr).toContain('Start it with --partitions 2');
        expect(r.stderr).toContain(redis!.url);
      }
      expect(await streams()).toEqual(before);
      expect(await client.xlen(before[0]!)).toBeGreaterThan(0);
    },
  );

  it('a log from before the record starts and records its count', { timeout: 120_000 }, async () => {
    const { repo, replay } = repoWithReplay(30);
    const data = tempDir();
    cleanups.push(data.remove);
    const prefix = 'cli-legacy:';
    const old = openRedisStreamLog(redis!.url, { partitions: 1, prefix });
    await old.append('events', [{ partitionKey: 'u', event: { user: 'u', ts: 1, amount: 1, kind: 'a' } }]);
    await old.close();
    const client = new Redis(redis!.url);
    cleanups.push(() => client.quit());
    expect(await client.get(`${prefix}log:partitions`)).toBeNull();
    const common = ['--repo', repo, '--log', 'redis', '--redis', redis!.url, '--redis-prefix', prefix];
    const r = await tessera(['stream', ...common, '--data-dir', data.path, '--replay', replay]);
    expect(r.code).toBe(0);
    expect(await client.get(`${prefix}log:partitions`)).toBe('1');
  });
});

describe.skipIf(!redis)('startEmbedded without workers, its Redis Streams log not answering at start', () => {
  it(
    'serves, refuses ingest until the log answers, then fails on a mismatch',
    { timeout: 60_000 },
    async () => {
      const port = await freePort();
      const server = await startRedisOn(port);
      cleanups.push(() => server.kill('SIGKILL'));
      const url = `redis://127.0.0.1:${port}`;
      const client = new Redis(url);
      await client.set('tessera:log:partitions', '2');
      await client.quit();
      const saved = process.env.TESSERA_REDIS_TIMEOUT_MS;
      process.env.TESSERA_REDIS_TIMEOUT_MS = '300';
      const data = tempDir();
      cleanups.push(data.remove);
      server.kill('SIGSTOP');
      const node = await startEmbedded({
        repo: await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
          checkFiles: false,
        }),
        dataDir: data.path,
        port: 0,
        log: 'redis',
        redisUrl: url,
        workers: false,
        partitions: 4,
      }).finally(() => {
        if (saved === undefined) delete process.env.TESSERA_REDIS_TIMEOUT_MS;
        else process.env.TESSERA_REDIS_TIMEOUT_MS = saved;
      });
      try {
        const res = await fetch(`${node.url}/v1/events/payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify([{ user_id: 'u1', amount: 1, ts: Date.now() }]),
        });
        expect(res.status).toBe(503);
        server.kill('SIGCONT');
        const failure = await node.failed;
        expect(failure).toBeInstanceOf(PartitionCountMismatchError);
        expect(failure.message).toContain('Start it with --partitions 2');
        expect((await fetch(`${node.url}/readyz`)).status).toBe(503);
      } finally {
        server.kill('SIGCONT');
        await node.close();
      }
    },
  );
});
