import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import type { GroupByDef, Row } from '../../src/define/types.ts';
import { count, groupBy } from '../../src/index.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { catchUpOffsetName, membersName, parseMembers } from '../../src/online/members.ts';
import {
  openConfiguredLog,
  openConfiguredStore,
  type OnlineConfig,
} from '../../src/online/runtime-config.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { planStreamWorkers, startStreamWorkers } from '../../src/online/stream-runner.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import { createStreamWorker, offsetName } from '../../src/online/worker.ts';
import { committedProgress } from '../../src/serve/committed-progress.ts';
import { monitorPipeline } from '../../src/serve/pipeline-monitor.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { startRedis } from '../support/servers.ts';
import { byUserV1, drainCollecting, versions, type Version } from './catch-up-fixtures.ts';
import { byUser, byUserKind, closeTo, events, naive, randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

/**
 * Redeploying a changed group-by (a new store id) catches it up on the log's events the topic's worker
 * already applied to the others (catch-up.ts), exactly once across kills; legacy stores are left alone;
 * uploads refuse to replace streamed tiles.
 */

const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const c of cleanups) c();
});

let prefixes = 0;
const setups: [string, (() => OnlineConfig) | null][] = [
  [
    'lmdb + file log',
    () => {
      const d = tempDir();
      cleanups.push(d.remove);
      return { store: 'lmdb', log: 'embedded', dataDir: d.path };
    },
  ],
  [
    'redis store + redis streams log',
    redis
      ? () => ({ store: 'redis', log: 'redis', redisUrl: redis.url, redisPrefix: `cu${++prefixes}:` })
      : null,
  ],
];

const TOPIC = 'events';

/** Opens store and log of `config`, closed by `cleanups`. */
function open(config: OnlineConfig): { store: OnlineStore; log: EventLog; close(): Promise<void> } {
  const store = openConfiguredStore(config);
  const log = openConfiguredLog(config);
  return {
    store,
    log,
    async close() {
      await log.close();
      await store.close();
    },
  };
}

/** Runs a deployment's workers in this process until they applied everything in the log. */
async function drain(store: OnlineStore, log: EventLog, version: Version, say: string[] = []) {
  const runner = await startStreamWorkers({
    sources: [events],
    groupBys: versions[version],
    log,
    store,
    worker: { batchSize: 50 },
  });
  await drainCollecting(runner, say);
  return runner;
}

/** by_user_kind (unchanged in every deployment) against the oracle, for every key of `all`. */
async function expectUserKindMatchesOracle(store: OnlineStore, all: readonly Row[]): Promise<void> {
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const keys = [
    ...new Set(
      all
        .filter((e) => typeof e.kind === 'string' && e.kind !== 'ignored')
        .map((e) => `${e.user}\u001f${e.kind}`),
    ),
  ];
  const [values] = await createFetchGroupBys(store)(
    [{ id: groupById(byUserKind), groupBy: byUserKind, keys }],
    t,
  );
  keys.forEach((k, i) => expect(closeTo(values![i]!.values, naive(all, 'by_user_kind', k, t))).toBe(true));
}

/** Runs catch-up-child.ts; SIGKILLs it after `killAfter` catch-up commits (null: lets it finish). */
function runChild(
  config: OnlineConfig,
  version: Version,
  killAfter: number | null,
): Promise<{ outcome: 'killed' | 'done'; catchUpCommits: number }> {
  const script = new URL('./catch-up-child.ts', import.meta.url).pathname;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(config), version, '7'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let catchUpCommits = 0;
    let out = '';
    let err = '';
    let killed = false;
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines)
        if (line.endsWith(' catchup') && ++catchUpCommits === killAfter && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL' && killed) resolve({ outcome: 'killed', catchUpCommits });
      else if (code === 0) resolve({ outcome: 'done', catchUpCommits });
      else reject(new Error(`catch-up child exited with ${code ?? signal}: ${err}`));
    });
  });
}

for (const [name, makeConfig] of setups) {
  describe.skipIf(!makeConfig)(`redeploying a changed group-by on ${name}`, () => {
    it(
      'catches the new version up on the log, stale meanwhile, and counts nothing twice',
      { timeout: 60_000 },
      async () => {
        const config = makeConfig!();
        const all = randomEvents(31, 700);
        const { store, log, close } = open(config);
        try {
          await ingestEvents(log, events, versions.v1, all.slice(0, 400));
          await drain(store, log, 'v1');
          const members = parseMembers(
            (await store.readOffsets([membersName(TOPIC, 0)]))[membersName(TOPIC, 0)],
          );
          expect(members).toEqual([groupById(byUserV1), groupById(byUserKind)].sort());
          // More events while the old version runs, some applied by it, some not.
          await ingestEvents(log, events, versions.v1, all.slice(400, 550));
          await drain(store, log, 'v1');
          await ingestEvents(log, events, versions.v1, all.slice(550));

          // Redeploy with a changed by_user: before it runs, the new version is reported catching up and stale.
          const runner = await startStreamWorkers({
            sources: [events],
            groupBys: versions.v2,
            log,
            store,
            worker: { batchSize: 50 },
          });
          expect(runner.stats()[0]!.catchingUp).toEqual([
            { id: groupById(byUser), groupBys: ['by_user'], nextOffset: 0, target: 550 },
          ]);
          const slots = planStreamWorkers({ sources: [events], groupBys: versions.v2, partitions: 1 });
          const monitor = monitorPipeline({
            workers: slots.map((s, i) => ({
              topic: s.topic.name,
              source: events.name,
              groupBys: s.topic.groupBys,
              partition: s.partition,
              worker: runner.workers[i]!,
            })),
            log,
            sources: [events],
            staleAfterMs: 60_000,
          });
          try {
            expect(monitor.isStale(byUser)).toBe(true);
            expect(monitor.isStale(byUserKind)).toBe(false);
            expect((await monitor.progress())[0]!.catchingUp).toEqual([
              { topic: TOPIC, partition: 0, groupBys: ['by_user'], nextOffset: 0, target: 550 },
            ]);
            const said = await drainCollecting(runner);
            expect(said.join('\n')).toMatch(/catching up by_user \(store id \w+\) on log offsets 0\.\.549/);
            // The retired version is reported gone once the commit that retires it is stored, not before.
            const retiredAt = said.findIndex((m) =>
              m.includes(`store id(s) ${groupById(byUserV1)} left topic`),
            );
            expect(retiredAt).toBeGreaterThan(said.findIndex((m) => m.includes('catching up by_user')));
            expect(monitor.isStale(byUser)).toBe(false);
            expect(runner.stats()[0]!.catchingUp).toBeUndefined();
          } finally {
            monitor.stop();
          }
          await expectUsersMatchOracle(store, all);
          await expectUserKindMatchesOracle(store, all);
          const saved = await store.readOffsets([
            membersName(TOPIC, 0),
            catchUpOffsetName(groupById(byUser), TOPIC, 0),
            catchUpOffsetName(groupById(byUserV1), TOPIC, 0),
          ]);
          expect(parseMembers(saved[membersName(TOPIC, 0)])).toEqual(
            [groupById(byUser), groupById(byUserKind)].sort(),
          );
          expect(saved[catchUpOffsetName(groupById(byUser), TOPIC, 0)]).toBe('550');
          // The retired version keeps where its tiles end: a rollback catches it up from there.
          expect(saved[catchUpOffsetName(groupById(byUserV1), TOPIC, 0)]).toBe('550');
          // Its tiles hold streamed events, so an upload of it refuses too (before reading any history).
          await expect(uploadGroupBy({ groupBy: byUserV1, until: 0, store })).rejects.toThrow(
            `group-by 'by_user' (store id ${groupById(byUserV1)}) in topic partition(s) events/0`,
          );

          // Roll back to v1 with more events: v1 catches up from 550 only (from 0 it would count twice).
          const more: Row[] = randomEvents(32, 100).map((e) => ({
            ...e,
            ts: (e.ts as number) + (all.at(-1)!.ts as number) - (all[0]!.ts as number),
          }));
          await ingestEvents(log, events, versions.v2, more);
          await drain(store, log, 'v2');
          const said: string[] = [];
          await drain(store, log, 'v1', said);
          expect(said.join('\n')).toMatch(/catching up by_user \(store id \w+\) on log offsets 550\.\.799/);
          const everything = [...all, ...more];
          const t = Math.max(...everything.map((e) => e.ts as number)) + 1;
          const users = [...new Set(everything.map((e) => e.user as string))];
          const [v1Values] = await createFetchGroupBys(store)(
            [{ id: groupById(byUserV1), groupBy: byUserV1, keys: users }],
            t,
          );
          users.forEach((u, i) => {
            const lifetime = everything.filter((e) => e.user === u && e.kind !== 'ignored').length;
            expect(v1Values![i]!.values[0]![1]).toBe(lifetime);
          });
          await expectUserKindMatchesOracle(store, everything);
        } finally {
          await close();
        }
      },
    );

    it(
      'resumes a catch-up killed with SIGKILL from its own offset, with no double count',
      { timeout: 120_000 },
      async () => {
        const config = makeConfig!();
        const all = randomEvents(33, 600);
        {
          const { store, log, close } = open(config);
          try {
            await ingestEvents(log, events, versions.v1, all.slice(0, 450));
            await drain(store, log, 'v1');
            await ingestEvents(log, events, versions.v1, all.slice(450));
          } finally {
            await close();
          }
        }
        // Batches of 7: about 64 catch-up commits up to offset 450; killed after 20 of them.
        const killed = await runChild(config, 'v2', 20);
        expect(killed.outcome).toBe('killed');
        const { store, log, close } = open(config);
        try {
          const saved = await store.readOffsets([
            offsetName(TOPIC, 0),
            membersName(TOPIC, 0),
            catchUpOffsetName(groupById(byUser), TOPIC, 0),
          ]);
          expect(saved[offsetName(TOPIC, 0)]).toBe('450');
          const progress = Number(saved[catchUpOffsetName(groupById(byUser), TOPIC, 0)]);
          expect(progress).toBeGreaterThan(0);
          expect(progress).toBeLessThan(450);
          expect(parseMembers(saved[membersName(TOPIC, 0)])).not.toContain(groupById(byUser));
          await close();
          const done = await runChild(config, 'v2', null);
          expect(done.outcome).toBe('done');
          // The restart resumed: it did not redo the commits before the kill.
          expect(done.catchUpCommits).toBeLessThan(64 - 15);
        } finally {
          await close();
        }
        const reopened = open(config);
        try {
          await expectUsersMatchOracle(reopened.store, all);
          await expectUserKindMatchesOracle(reopened.store, all);
        } finally {
          await reopened.close();
        }
      },
    );

    it(
      'fences a process with the old definitions once a new one caught up and joined (overlapping deploy)',
      { timeout: 60_000 },
      async () => {
        const config = makeConfig!();
        const all = randomEvents(3, 500);
        const { store, log, close } = open(config);
        try {
          await ingestEvents(log, events, versions.v1, all.slice(0, 400));
          // The old deployment A keeps running while the new one B catches by_user up and joins.
          const a = await drain(store, log, 'v1');
          await drain(store, log, 'v2');
          await ingestEvents(log, events, versions.v1, all.slice(400));
          // A's next commit would apply events B's new id never gets: it is fenced, for good.
          await expect(a.drain()).rejects.toThrow(
            /stream worker events\/0 stopped: another process with other definitions is writing this partition/,
          );
          await expect(a.drain()).rejects.toThrow(/other definitions/);
          await drain(store, log, 'v2');
          await expectUsersMatchOracle(store, all);
          await expectUserKindMatchesOracle(store, all);
          // A rollback catches v1 up from where it left: nothing counted twice.
          await drain(store, log, 'v1');
          const t = Math.max(...all.map((e) => e.ts as number)) + 1;
          const users = [...new Set(all.map((e) => e.user as string))];
          const [v1Values] = await createFetchGroupBys(store)(
            [{ id: groupById(byUserV1), groupBy: byUserV1, keys: users }],
            t,
          );
          users.forEach((u, i) => {
            const lifetime = all.filter((e) => e.user === u && e.kind !== 'ignored').length;
            expect(v1Values![i]!.values[0]![1]).toBe(lifetime);
          });
        } finally {
          await close();
        }
      },
    );

    it('takes every group-by of a legacy store (offsets, no members) as applied: no catch-up', async () => {
      const config = makeConfig!();
      const all = randomEvents(34, 300);
      const { store, log, close } = open(config);
      try {
        await ingestEvents(log, events, versions.v2, all.slice(0, 200));
        // As an older version left it: a worker's offsets, tiles and counters, but no members entry.
        const [topic] = planStreamWorkers({ sources: [events], groupBys: versions.v2, partitions: 1 });
        await (await createStreamWorker({ log, store, topic: topic!.topic, partition: 0 })).drain();
        const stored = await store.readOffsets();
        expect(stored[offsetName(TOPIC, 0)]).toBe('200');
        expect(stored[membersName(TOPIC, 0)]).toBeUndefined();
        await ingestEvents(log, events, versions.v2, all.slice(200));
        const said: string[] = [];
        await drain(store, log, 'v2', said);
        expect(said.join('\n')).toMatch(/records no group-by memberships yet.*applied up to offset 200/);
        expect(said.join('\n')).not.toMatch(/catching up/);
        await expectUsersMatchOracle(store, all);
        await expectUserKindMatchesOracle(store, all);
        expect(parseMembers((await store.readOffsets())[membersName(TOPIC, 0)])).toEqual(
          [groupById(byUser), groupById(byUserKind)].sort(),
        );
      } finally {
        await close();
      }
    });
  });
}

describe('a key list new at --partitions > 1 (a topic of its own, newer than the history)', () => {
  const byKind = groupBy({
    name: 'by_kind',
    source: events,
    keys: ['kind'],
    aggregations: [count({ windows: ['lifetime'] })],
  });
  const before = [byUser, byUserKind];
  const after = [byUser, byUserKind, byKind];

  /** Runs the workers of `groupBys` until they applied the log; returns them and what they said. */
  async function run(
    store: OnlineStore,
    log: EventLog,
    groupBys: readonly GroupByDef[],
    partitions?: readonly number[],
  ) {
    const said: string[] = [];
    const runner = await startStreamWorkers({
      sources: [events],
      groupBys,
      log,
      store,
      worker: { batchSize: 50 },
      ...(partitions ? { partitions } : {}),
    });
    await drainCollecting(runner, said);
    const flagged = runner
      .stats()
      .flatMap((s) =>
        s.missingHistory ? [[s.topic, s.partition, ...s.missingHistory.groupBys].join()] : [],
      );
    return { runner, said: said.join('\n'), flagged };
  }

  it("is not reported for a topic whose append of a batch arrived moments after another topic's", async () => {
    // A first deploy at P=2 on a log whose appends to a source's topics are not atomic (NATS, Kafka, a Redis
    // Cluster): events.user committed a batch that events.user+kind gets a moment later, while its node
    // plans. Simulated on the embedded log by appending to one topic, then the other.
    const d = tempDir();
    cleanups.push(d.remove);
    const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path, partitions: 2 };
    const gbs = [byUser, byUserKind];
    const all = randomEvents(9, 200);
    const { store, log, close } = open(config);
    try {
      await ingestEvents(log, events, gbs, all.slice(0, 150));
      const slots = planStreamWorkers({ sources: [events], groupBys: gbs, partitions: 2 });
      const start = (user: boolean) =>
        startStreamWorkers({
          sources: [events],
          groupBys: gbs,
          log,
          store,
          slots: slots.filter((s) => (s.topic.name === 'events.user') === user),
        });
      const a = await start(true);
      await a.drain();
      await ingestEvents(log, events, [byUser], all.slice(150)); // the batch's first topic
      await a.drain();
      const b = start(false);
      await new Promise((r) => setTimeout(r, 300));
      await ingestEvents(log, events, [byUserKind], all.slice(150)); // ... and its second, moments later
      await (await b).drain();
      expect((await run(store, log, gbs)).flagged).toEqual([]);
    } finally {
      await close();
    }
  });

  it('is reported on every partition when they start one after another (--owned nodes)', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path, partitions: 2 };
    const all = randomEvents(41, 400);
    const { store, log, close } = open(config);
    try {
      await ingestEvents(log, events, before, all.slice(0, 300));
      expect((await run(store, log, before)).flagged).toEqual([]);
      await ingestEvents(log, events, after, all.slice(300));
      // Partition 0's node restarts first and applies events.kind/0; partition 1's node follows.
      const first = await run(store, log, after, [0]);
      expect(first.flagged).toEqual(['events.kind,0,by_kind']);
      const second = await run(store, log, after, [1]);
      expect(second.flagged).toEqual(['events.kind,1,by_kind']);
      expect(second.said).toMatch(/WARNING events\.kind\/1: group-by\(s\) by_kind have no events before/);
    } finally {
      await close();
    }
  });

  it(
    'is reported missing history (a warning at every start, stats, progress; not stale) until an upload covers it',
    { timeout: 60_000 },
    async () => {
      const d = tempDir();
      cleanups.push(d.remove);
      const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path, partitions: 2 };
      const all = randomEvents(37, 400);
      const repo = tempDir();
      cleanups.push(repo.remove);
      mkdirSync(join(repo.path, 'data'));
      writeFileSync(
        join(repo.path, 'data', 'events.jsonl'),
        all.map((e) => JSON.stringify(e)).join('\n') + '\n',
      );
      let { store, log, close } = open(config);
      try {
        await ingestEvents(log, events, before, all.slice(0, 300));
        expect((await run(store, log, before)).flagged).toEqual([]);
        // Redeploy with by_kind: its topic events.kind only gets the events ingested from now on.
        await ingestEvents(log, events, after, all.slice(300));
        const first = await run(store, log, after);
        expect(first.flagged).toEqual(['events.kind,0,by_kind', 'events.kind,1,by_kind']);
        expect(first.said).toMatch(
          /WARNING events\.kind\/0: group-by\(s\) by_kind have no events before .*tessera upload --groupby by_kind --until T/,
        );
        expect(first.said).not.toMatch(/by_user\b.*no events before/);
        const slots = planStreamWorkers({ sources: [events], groupBys: after, partitions: 2 });
        const monitor = monitorPipeline({
          workers: slots.map((s, i) => ({
            topic: s.topic.name,
            source: events.name,
            groupBys: s.topic.groupBys,
            partition: s.partition,
            worker: first.runner.workers[i]!,
          })),
          log,
          sources: [events],
          staleAfterMs: 60_000,
        });
        try {
          const [progress] = await monitor.progress();
          expect(progress!.missingHistory?.map((m) => [m.topic, m.partition, m.groupBys])).toEqual([
            ['events.kind', 0, ['by_kind']],
            ['events.kind', 1, ['by_kind']],
          ]);
          expect(monitor.isStale(byKind)).toBe(false);
        } finally {
          monitor.stop();
        }
        // Persistent: the next start (members recorded now) still says so; so does a --no-workers view.
        const again = await run(store, log, after);
        expect(again.flagged).toEqual(first.flagged);
        expect(again.said).toMatch(/by_kind have no events before/);
        const remote = committedProgress(store, slots);
        await remote.refresh();
        expect(remote.workers.flatMap((w) => w.worker.stats().missingHistory?.groupBys ?? [])).toEqual([
          'by_kind',
          'by_kind',
        ]);
        // So does a --no-workers node's metric (LMDB: one process at a time, so this one closes first).
        await close();
        const server = await startEmbedded({
          repo: { sources: [events], groupBys: after, joins: [] },
          dataDir: d.path,
          partitions: 2,
          port: 0,
          workers: false,
        });
        try {
          const metrics = await (await fetch(`${server.url}/metrics`)).text();
          expect(metrics).toMatch(/tessera_groupby_missing_history\{group_by="by_kind"\} 1/);
          expect(metrics).toMatch(/tessera_groupby_missing_history\{group_by="by_user"\} 0/);
        } finally {
          await server.close();
        }
        ({ store, log, close } = open(config));
        // An upload of its history clears it (workers applied events to it already: --replace-streamed).
        const until = Math.max(...all.map((e) => e.ts as number)) + 1;
        await uploadGroupBy({ groupBy: byKind, until, store, baseDir: repo.path, replaceStreamed: true });
        const uploaded = await run(store, log, after);
        expect(uploaded.flagged).toEqual([]);
        expect(uploaded.said).not.toMatch(/no events before/);
      } finally {
        await close();
      }
    },
  );

  it('is not reported when every topic started together (a first deploy)', { timeout: 30_000 }, async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path, partitions: 2 };
    const all = randomEvents(38, 200);
    const { store, log, close } = open(config);
    try {
      await ingestEvents(log, events, after, all.slice(0, 100));
      expect((await run(store, log, after)).flagged).toEqual([]);
      await ingestEvents(log, events, after, all.slice(100));
      const next = await run(store, log, after);
      expect(next.flagged).toEqual([]);
      expect(next.said).not.toMatch(/no events before/);
    } finally {
      await close();
    }
  });
});

describe('upload guard', () => {
  /** A repo folder with `all` as the events source's offline data. */
  function dataRepo(all: readonly Row[]): string {
    const repo = tempDir();
    cleanups.push(repo.remove);
    mkdirSync(join(repo.path, 'data'));
    writeFileSync(
      join(repo.path, 'data', 'events.jsonl'),
      all.map((e) => JSON.stringify(e)).join('\n') + '\n',
    );
    return repo.path;
  }

  it(
    'refuses to replace a group-by the workers applied events to, unless told; the redeploy procedure works',
    { timeout: 60_000 },
    async () => {
      const d = tempDir();
      cleanups.push(d.remove);
      const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path };
      const all = randomEvents(35, 600);
      const baseDir = dataRepo(all);
      const sorted = all.map((e) => e.ts as number).sort((a, b) => a - b);
      const until = sorted[300]! + 1;
      const { store, log, close } = open(config);
      try {
        await ingestEvents(log, events, versions.v1, all);
        await drain(store, log, 'v1');
        const upload = (groupBy: GroupByDef, replaceStreamed?: boolean) =>
          uploadGroupBy({ groupBy, until, store, baseDir, ...(replaceStreamed ? { replaceStreamed } : {}) });
        await expect(upload(byUserKind)).rejects.toThrow(
          /stream workers already applied events to group-by 'by_user_kind' \(store id \w+\) in topic partition\(s\) events\/0;.*upload the new version while the old serve runs, then restart.*--replace-streamed/,
        );
        // The redeploy procedure: upload the new version (not yet a member) while the old one runs...
        const result = await upload(byUser);
        expect(result.events).toBeGreaterThan(200);
        // ...then restart with it: the catch-up applies the log's events from the cutoff on.
        await drain(store, log, 'v2');
        await expectUsersMatchOracle(store, all);
        // Now a member, so a second upload of it refuses too; the override replaces its tiles.
        await expect(upload(byUser)).rejects.toThrow(/group-by 'by_user'/);
        await expect(upload(byUser, true)).resolves.toMatchObject({ groupBy: 'by_user' });
      } finally {
        await close();
      }
    },
  );

  it(
    'refuses on a store from before members (no memberships recorded) until the workers ran once',
    { timeout: 60_000 },
    async () => {
      const d = tempDir();
      cleanups.push(d.remove);
      const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path };
      const all = randomEvents(39, 300);
      const baseDir = dataRepo(all);
      const until = all.map((e) => e.ts as number).sort((a, b) => a - b)[150]! + 1;
      const { store, log, close } = open(config);
      try {
        await ingestEvents(log, events, versions.v1, all);
        // As an older version left it: offsets and tiles, no members entry.
        const [slot] = planStreamWorkers({ sources: [events], groupBys: versions.v1, partitions: 1 });
        await (await createStreamWorker({ log, store, topic: slot!.topic, partition: 0 })).drain();
        for (const g of [byUserKind, byUser])
          await expect(uploadGroupBy({ groupBy: g, until, store, baseDir })).rejects.toThrow(
            new RegExp(
              `records no group-by memberships for topic partition\\(s\\) events/0 .*group-by '${g.name}'.*Restart the workers once with unchanged definitions first.*--replace-streamed`,
            ),
          );
        // Once the workers recorded the memberships, the new version (never applied) may be uploaded.
        await drain(store, log, 'v1');
        await expect(uploadGroupBy({ groupBy: byUser, until, store, baseDir })).resolves.toMatchObject({
          groupBy: 'by_user',
        });
        await expect(uploadGroupBy({ groupBy: byUserKind, until, store, baseDir })).rejects.toThrow(
          /stream workers already applied events to group-by 'by_user_kind'/,
        );
        await drain(store, log, 'v2');
        await expectUsersMatchOracle(store, all);
      } finally {
        await close();
      }
    },
  );

  it(
    'a --no-workers node serves a group-by its topic worker has not caught up as stale',
    { timeout: 30_000 },
    async () => {
      const d = tempDir();
      cleanups.push(d.remove);
      const config: OnlineConfig = { store: 'lmdb', log: 'embedded', dataDir: d.path };
      const all = randomEvents(36, 200);
      {
        const { store, log, close } = open(config);
        try {
          await ingestEvents(log, events, versions.v1, all);
          await drain(store, log, 'v1');
        } finally {
          await close();
        }
      }
      const repo = { sources: [events], groupBys: versions.v2, joins: [] };
      const statuses = async () => {
        const server = await startEmbedded({ repo, dataDir: d.path, port: 0, workers: false });
        try {
          await server.progress();
          const at = Math.max(...all.map((e) => e.ts as number)) + 1;
          const user = await server.service.fetchGroupBy('by_user', [{ user: 'u1' }], at);
          const kind = await server.service.fetchGroupBy('by_user_kind', [{ user: 'u1', kind: 'a' }], at);
          const statusOf = (r: { status: Readonly<Record<string, string>> }) =>
            [...new Set(Object.values(r.status))].join();
          return [statusOf(user.rows[0]!), statusOf(kind.rows[0]!)];
        } finally {
          await server.close();
        }
      };
      const before = await statuses();
      expect(before[0]).toBe('stale');
      expect(before[1]).not.toBe('stale');
      const { store, log, close } = open(config);
      try {
        await drain(store, log, 'v2');
      } finally {
        await close();
      }
      expect((await statuses())[0]).not.toBe('stale');
    },
  );
});

describe('tessera stream and tessera upload on a redeploy', () => {
  const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
  const versionsFile = new URL('./catch-up-fixtures.ts', import.meta.url).pathname;
  const tessera = (args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });

  it(
    'a changed group-by is caught up by the next tessera stream; upload refuses it unless --replace-streamed',
    { timeout: 150_000 },
    async () => {
      const repo = tempDir();
      cleanups.push(repo.remove);
      const defs = join(repo.path, 'defs.ts');
      writeFileSync(
        defs,
        `export { events, byUserKind } from ${JSON.stringify(fixtures)};\nexport { byUserV1 } from ${JSON.stringify(versionsFile)};\n`,
      );
      const all = randomEvents(37, 500);
      mkdirSync(join(repo.path, 'data'));
      writeFileSync(join(repo.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
      writeFileSync(join(repo.path, 'replay.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
      const common = ['--repo', repo.path, '--data-dir', join(repo.path, '.tessera')];
      const replay = ['stream', ...common, '--replay', join(repo.path, 'replay.jsonl')];
      await tessera(replay);

      writeFileSync(defs, `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`);
      const until = String([...all.map((e) => e.ts as number)].sort((a, b) => a - b)[250]);
      const upload = ['upload', ...common, '--groupby', 'by_user_kind', '--until', until];
      const refused = await tessera(upload).then(
        () => null,
        (e: { stderr: string }) => e.stderr,
      );
      expect(refused).toMatch(
        /stream workers already applied events to group-by 'by_user_kind'.*--replace-streamed/,
      );

      const again = await tessera(replay);
      expect(again.stdout).toContain('appended 0 events');
      expect(again.stderr).toMatch(/events\/0: catching up by_user \(store id \w+\) on log offsets 0\.\.499/);
      expect(again.stderr).toMatch(/events\/0: by_user \(store id \w+\) caught up to offset 500/);
      const store = openConfiguredStore({ store: 'lmdb', dataDir: join(repo.path, '.tessera') });
      try {
        await expectUsersMatchOracle(store, all);
        await expectUserKindMatchesOracle(store, all);
      } finally {
        await store.close();
      }
      const replaced = await tessera([...upload, '--replace-streamed']);
      expect(replaced.stdout).toMatch(/uploaded by_user_kind/);
    },
  );
});

describe('tessera serve on a redeploy', () => {
  const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
  const versionsFile = new URL('./catch-up-fixtures.ts', import.meta.url).pathname;
  /** A repo folder exporting a deployment of the fixtures. */
  async function repoOf(version: Version) {
    const d = tempDir();
    cleanups.push(d.remove);
    writeFileSync(
      join(d.path, 'defs.ts'),
      version === 'v1'
        ? `export { events, byUserKind } from ${JSON.stringify(fixtures)};\nexport { byUserV1 } from ${JSON.stringify(versionsFile)};\n`
        : `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`,
    );
    return loadRepo(d.path, { checkFiles: false });
  }

  it(
    'catches the changed group-by up in its worker thread; drain waits for it; then values equal the oracle',
    { timeout: 60_000 },
    async () => {
      const d = tempDir();
      cleanups.push(d.remove);
      const all = randomEvents(38, 600);
      const first = await startEmbedded({ repo: await repoOf('v1'), dataDir: d.path, port: 0 });
      try {
        expect(first.workerThreads).toBe(1);
        await ingestEvents(first.log, events, versions.v1, all.slice(0, 450));
        await first.drain();
      } finally {
        await first.close();
      }
      const second = await startEmbedded({
        repo: await repoOf('v2'),
        dataDir: d.path,
        port: 0,
        batchSize: 20,
      });
      try {
        await second.drain();
        expect((await second.progress())[0]!.catchingUp).toBeUndefined();
        await ingestEvents(second.log, events, versions.v2, all.slice(450));
        await second.drain();
        const at = Math.max(...all.map((e) => e.ts as number)) + 1;
        const row = (await second.service.fetchGroupBy('by_user', [{ user: 'u1' }], at)).rows[0]!;
        expect(new Set(Object.values(row.status))).toEqual(new Set(['ok']));
        const metrics = await (await fetch(`${second.url}/metrics`)).text();
        expect(metrics).toMatch(/tessera_groupby_catch_up_remaining_events\{group_by="by_user"\} 0/);
      } finally {
        await second.close();
      }
      const store = openConfiguredStore({ store: 'lmdb', dataDir: d.path });
      try {
        await expectUsersMatchOracle(store, all);
        await expectUserKindMatchesOracle(store, all);
      } finally {
        await store.close();
      }
    },
  );
});
