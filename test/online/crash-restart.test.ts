import { afterAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { Row } from '../../src/define/types.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import type { OnlineStore, StoreConfig } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker, type StreamWorker } from '../../src/online/worker.ts';
import { keysMatching } from '../support/redis-keys.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';
import { openRedisClient, untilReady } from '../../src/online/redis-client.ts';
import { openRedisStore } from '../../src/online/redis-store.ts';
import { runChild, runWorkerChild, type ChildRun, type CrashPoint } from './crash-child.ts';
import { byUser, byUserKind, events, groupBys, randomEvents, rng, tempDir } from './fixtures.ts';

const redis = await startRedis();
const cluster = await startRedisCluster();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  await cluster?.stop();
  for (const c of cleanups) c();
});

/** A fetch of every key the events touch, in both group-bys. */
function everyKey(all: readonly Row[]) {
  const users = [...new Set(all.map((e) => e.user as string))];
  const keysUk = [
    ...new Set(all.filter((e) => typeof e.kind === 'string').map((e) => `${e.user}\u001f${e.kind}`)),
  ];
  return [
    { id: groupById(byUser), groupBy: byUser, keys: users },
    { id: groupById(byUserKind), groupBy: byUserKind, keys: keysUk },
  ];
}

/**
 * Checks that the store of `crashed` equals the clean run's: a worker reopened on it resumes at the end of
 * the log, with the same counters (CPU time aside), and every key of `all` reads the same values at `ats`.
 */
async function expectLikeClean(
  crashed: StoreConfig,
  clean: { log: EventLog; store: OnlineStore; worker: StreamWorker },
  all: readonly Row[],
  ats: readonly number[],
): Promise<void> {
  const store = openStore(crashed);
  try {
    const [topic] = streamTopics(events, groupBys, 1);
    const reopened = await createStreamWorker({ log: clean.log, store, topic, partition: 0 });
    expect(reopened.stats().nextOffset).toBe(all.length);
    // Counts are exact; CPU time naturally differs between runs.
    const counts = (g: Record<string, { cpuMs: number }>) =>
      Object.fromEntries(Object.entries(g).map(([name, { cpuMs, ...rest }]) => [name, rest]));
    expect(counts(reopened.stats().groupBys)).toEqual(counts(clean.worker.stats().groupBys));
    expect(reopened.stats().groupBys.by_user.cpuMs).toBeGreaterThan(0);
    const req = everyKey(all);
    for (const at of ats) {
      const got = await createFetchGroupBys(store)(req, at);
      const want = await createFetchGroupBys(clean.store)(req, at);
      // Values must be equal. (Status may differ: whether an idle entity's expired tiles are already
      // deleted depends on batch boundaries, and an entity with only expired tiles reads as 'ok'.)
      expect(got.map((g) => g.map((v) => v.values))).toEqual(want.map((g) => g.map((v) => v.values)));
    }
  } finally {
    await store.close();
  }
}

let prefix = 0;
const configs: [string, (() => StoreConfig) | null][] = [
  [
    'lmdb',
    () => {
      const d = tempDir();
      cleanups.push(d.remove);
      return { kind: 'lmdb', path: d.path };
    },
  ],
  ['redis', redis ? () => ({ kind: 'redis', url: redis.url, prefix: `c${prefix++}:` }) : null],
  [
    'redis cluster',
    cluster ? () => ({ kind: 'redis', url: cluster.url, prefix: `c${prefix++}:`, partitions: 1 }) : null,
  ],
];

for (const [name, makeConfig] of configs) {
  describe.skipIf(!makeConfig)(`kill -9 of a worker on ${name}`, () => {
    it(
      'neither loses nor double-counts events: values and counters equal a clean run',
      { timeout: 60_000 },
      async () => {
        const logDir = tempDir();
        cleanups.push(logDir.remove);
        const all = randomEvents(11, 800);
        const log = openFileLog(logDir.path);
        for (let i = 0; i < all.length; i += 100)
          await ingestEvents(log, events, groupBys, all.slice(i, i + 100));
        await log.close();

        const crashed = makeConfig!();
        const r = rng(5);
        let kills = 0;
        for (let attempt = 0; attempt < 20; attempt++) {
          const killAt = kills < 2 ? 1 + Math.floor(r() * 12) : null;
          const outcome = await runWorkerChild({ kind: 'file', dir: logDir.path }, crashed, killAt);
          if (outcome === 'killed') kills++;
          else if (kills < 2) {
            // The parent kills when it reads the child's commit line: on a loaded machine the child may
            // drain the log first. More events, and kill again.
            const more = randomEvents(12 + attempt, 200);
            const append = openFileLog(logDir.path);
            await ingestEvents(append, events, groupBys, more);
            await append.close();
            all.push(...more);
          } else break;
        }
        expect(kills).toBe(2);

        // Clean run in-process over the same log.
        const clean = openStore(makeConfig!());
        const cleanLog = openFileLog(logDir.path);
        const [topic] = streamTopics(events, groupBys, 1);
        const w = await createStreamWorker({
          log: cleanLog,
          store: clean,
          topic,
          partition: 0,
          batchSize: 500,
        });
        await w.drain();

        const t = Math.max(...all.map((e) => e.ts as number)) + 1;
        await expectLikeClean(crashed, { log: cleanLog, store: clean, worker: w }, all, [
          t,
          t + 600_000,
          t + 86_400_000,
        ]);
        await cleanLog.close();
        await clean.close();
      },
    );
  });
}

/**
 * Big Redis commits (redis-store.ts `commitPart`): with a tiny chunk size every batch is staged, recorded
 * and applied in many chunks, and the child kills itself at chosen Redis commands of each step (and the
 * parent at random times), then is restarted from what the store holds until it drains the log.
 */
type RedisConfig = Extract<StoreConfig, { kind: 'redis' }> & { prefix: string };
const chunked: [string, ((chunk?: number) => RedisConfig) | null][] = [
  [
    'redis',
    redis
      ? (chunk) => ({ kind: 'redis', url: redis.url, prefix: `k${prefix++}:`, commitChunkEntities: chunk })
      : null,
  ],
  [
    'redis cluster',
    cluster
      ? (chunk) => ({
          kind: 'redis',
          url: cluster.url,
          prefix: `k${prefix++}:`,
          partitions: 1,
          commitChunkEntities: chunk,
        })
      : null,
  ],
];

/** The keys of `config`'s store matching `glob` (after its prefix), with their TTLs (ms; -1 none). */
async function keysWithTtl(config: RedisConfig, glob: string): Promise<Map<string, number>> {
  const client = openRedisClient(config.url);
  try {
    await untilReady(client); // (a Cluster client knows no nodes before)
    const keys = await keysMatching(client, `${config.prefix}${glob}`);
    return new Map(await Promise.all(keys.map(async (k) => [k, await client.pttl(k)] as const)));
  } finally {
    client.disconnect();
  }
}

for (const [name, makeConfig] of chunked) {
  describe.skipIf(!makeConfig)(`kill -9 of a worker during chunked commits on ${name}`, () => {
    it(
      'staging, recording and applying chunks: exactly once, readers see no torn or doubled entity, no log left',
      { timeout: 180_000 },
      async () => {
        const logDir = tempDir();
        cleanups.push(logDir.remove);
        // Many users, so a batch of 60 touches ~100 entities: ~30 chunks of 3 per commit.
        const all = randomEvents(23, 3000, 150);
        const log = openFileLog(logDir.path);
        for (let i = 0; i < all.length; i += 200)
          await ingestEvents(log, events, groupBys, all.slice(i, i + 200));
        await log.close();
        const childLog = { kind: 'file', dir: logDir.path } as const;
        const batchSize = 60;

        // The oracle: a clean in-process run, every commit one script.
        const cleanLog = openFileLog(logDir.path);
        const clean = openStore(makeConfig!());
        const [topic] = streamTopics(events, groupBys, 1);
        const w = await createStreamWorker({ log: cleanLog, store: clean, topic, partition: 0, batchSize });
        await w.drain();
        const req = everyKey(all);
        const tFar = Math.max(...all.map((e) => e.ts as number)) + 86_400_000 * 1000;
        const lifetime = (g: { values: readonly (readonly unknown[])[] }) => g.values[0][3] as number;
        const finalCounts = (await createFetchGroupBys(clean)([req[0]], tFar))[0].map(lifetime);

        // A serving reader polls while the workers run: an entity's lifetime count only grows (an entity's
        // value is replaced whole, and each chunk applies once) and never passes the clean run's.
        const crashed = makeConfig!(3);
        const reader = openStore({ kind: 'redis', url: crashed.url, prefix: crashed.prefix });
        const readerFetch = createFetchGroupBys(reader);
        const seen = new Array<number>(req[0].keys.length).fill(0);
        const problems: string[] = [];
        let polls = 0;
        let reading = true;
        const polling = (async () => {
          while (reading) {
            try {
              const [got] = await readerFetch([req[0]], tFar);
              got.forEach((g, i) => {
                const n = g.status === 'missing_key' ? 0 : lifetime(g);
                if (n < seen[i] || n > finalCounts[i])
                  problems.push(
                    `${req[0].keys[i]}: lifetime count ${n} after ${seen[i]} (final ${finalCounts[i]})`,
                  );
                seen[i] = Math.max(seen[i], n);
              });
              polls++;
            } catch (err) {
              problems.push(`read failed: ${(err as Error).message}`);
            }
            await new Promise((r) => setTimeout(r, 15));
          }
        })();

        // Each restart is killed at the next crash point of this cycle, at a random command of its step.
        const r = rng(name.length);
        const cycle: (CrashPoint | 'timer')[] = [
          { phase: 'stage', at: 'torn', skip: 0 },
          { phase: 'record', at: 'reply', skip: 0 },
          { phase: 'apply', at: 'reply', skip: 0 }, // likely in readOffsets, finishing the log just recorded
          { phase: 'stage', at: 'reply', skip: 0 },
          { phase: 'apply', at: 'sent', skip: 0 },
          { phase: 'record', at: 'sent', skip: 0 },
          { phase: 'apply', at: 'torn', skip: 0 },
          { phase: 'any', at: 'reply', skip: 0 },
          'timer',
        ];
        const runs: ChildRun[] = [];
        for (let attempt = 0; attempt < 2 * cycle.length; attempt++) {
          const c = cycle[attempt % cycle.length];
          const crash: CrashPoint | undefined =
            c === 'timer'
              ? undefined
              : {
                  ...c,
                  skip: Math.floor(r() * (c.phase === 'record' ? 2 : c.phase === 'any' ? 120 : 45)),
                  fraction: r(),
                };
          const run = await runChild(childLog, crashed, null, {
            batchSize,
            ...(crash ? { crash } : { killAfterMs: 5 + Math.floor(r() * 60) }),
          });
          runs.push(run);
          if (run.outcome === 'done') break;
        }
        for (let i = 0; i < 5 && runs[runs.length - 1].outcome !== 'done'; i++)
          runs.push(await runChild(childLog, crashed, null, { batchSize }));
        reading = false;
        await polling;
        console.log(
          `${name}: ${runs.length} runs, ${runs.filter((x) => x.outcome === 'killed').length} killed, at: ${runs.map((x) => `${x.commits} ${x.killedAt}`).join('; ')}; ${polls} reader polls`,
        );
        expect(runs[runs.length - 1].outcome).toBe('done');
        const hit = runs.map((x) => x.killedAt).filter((x) => x !== null);
        for (const step of ['stage', 'record', 'apply'])
          expect(hit.some((x) => x.startsWith(step))).toBe(true);
        expect(runs.filter((x) => x.outcome === 'killed').length).toBeGreaterThanOrEqual(12);
        expect(problems).toEqual([]);
        expect(polls).toBeGreaterThan(10);

        // The log of the last big commit is gone, and a staged commit that was never recorded only waits to
        // expire.
        expect([...(await keysWithTtl(crashed, 'w{*')).keys()]).toEqual([]);
        const staged = await keysWithTtl(crashed, 'x{*');
        for (const [key, ttl] of staged) expect({ key, ttl: ttl > 0 }).toEqual({ key, ttl: true });
        expect(staged.size).toBeGreaterThan(0); // the kills between staging and recording left some

        await expectLikeClean(crashed, { log: cleanLog, store: clean, worker: w }, all, [
          tFar - 86_400_000 * 1000,
          tFar - 86_400_000 * 999,
          tFar,
        ]);
        await cleanLog.close();
        await reader.close();
        await clean.close();
      },
    );
  });
}

it('refuses a commit chunk size that is not a positive integer, naming the option', () => {
  for (const bad of [0, -1, 2.5, Number.NaN])
    expect(() => openRedisStore('redis://127.0.0.1:1', { commitChunkEntities: bad })).toThrow(
      /commitChunkEntities must be a positive integer/,
    );
});
