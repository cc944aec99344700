import { afterAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import type { GroupByDef, Row } from '../../src/define/types.ts';
import { markerCount, readExactFrom } from '../../src/online/exact-from.ts';
import { compileGroupBy, createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { CommitBatch, OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startRedis } from '../support/servers.ts';
import { aroundCommit } from './store-hooks.ts';
import {
  byUser,
  byUserKind,
  closeTo,
  events,
  groupBys,
  naive,
  randomEvents,
  rng,
  T0,
  tempDir,
  userStats,
} from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const c of cleanups) c();
});

let prefix = 0;
const stores: [string, (() => OnlineStore) | null][] = [
  [
    'lmdb',
    () => {
      const d = tempDir();
      cleanups.push(d.remove);
      return openStore({ kind: 'lmdb', path: d.path });
    },
  ],
  ['redis', redis ? () => openStore({ kind: 'redis', url: redis.url, prefix: `w${prefix++}:` }) : null],
];

for (const [name, makeStore] of stores) {
  describe.skipIf(!makeStore)(`stream worker on ${name}`, () => {
    it('matches a naive oracle at random query times while events stream in (with late events)', async () => {
      const store = makeStore!();
      const logDir = tempDir();
      cleanups.push(logDir.remove);
      const log = openFileLog(logDir.path);
      const [topic] = streamTopics(events, groupBys, 1);
      // A small cache forces entities to be re-read from the store between batches.
      const worker = await createStreamWorker({
        log,
        store,
        topic,
        partition: 0,
        batchSize: 97,
        maxCachedEntities: 8,
        maxCachedRuns: 8,
        maxRunBytes: 64, // frequent roll-ups, so batches load tiles...
        loadChunkEntities: 2, // ...in several reads
      });
      const fetch = createFetchGroupBys(store);
      const all = randomEvents(7, 1500);
      const r = rng(99);
      let checked = 0;
      for (let i = 0; i < all.length; i += 150) {
        const chunk = all.slice(i, i + 150);
        await ingestEvents(log, events, groupBys, chunk);
        await worker.drain();
        const seen = all.slice(0, i + chunk.length);
        const wm = Math.max(...seen.map((e) => e.ts as number));
        for (let q = 0; q < 6; q++) {
          const pick = r();
          // at the watermark, on hop boundaries, and at random later times
          const t =
            pick < 0.2
              ? wm
              : pick < 0.4
                ? Math.ceil(wm / 300_000) * 300_000
                : wm + 1 + Math.floor(r() * 2 * 3_600_000);
          // Half the queries ask for the newest event's entity, so `t = wm` hits an event exactly at `t`.
          const newest = seen.find((e) => e.ts === wm)!;
          const user = q % 2 === 0 ? (newest.user as string) : `u${Math.floor(r() * 12)}`;
          const kind =
            q % 2 === 0 && typeof newest.kind === 'string'
              ? newest.kind
              : ['a', 'b', 'c'][Math.floor(r() * 3)];
          const [[u], [uk]] = await fetch(
            [
              { id: groupById(byUser), groupBy: byUser, keys: [user] },
              { id: groupById(byUserKind), groupBy: byUserKind, keys: [`${user}\u001f${kind}`] },
            ],
            t,
          );
          const expectedU = naive(seen, 'by_user', user, t);
          const expectedUk = naive(seen, 'by_user_kind', `${user}\u001f${kind}`, t);
          if (!closeTo(u.values, expectedU))
            expect({ t, user, got: u.values }).toEqual({ t, user, got: expectedU });
          if (!closeTo(uk.values, expectedUk))
            expect({ t, user, kind, got: uk.values }).toEqual({ t, user, kind, got: expectedUk });
          checked++;
        }
      }
      expect(checked).toBe(60);
      const stats = worker.stats();
      expect(stats.nextOffset).toBe(all.length);
      // by_user has lifetime windows: nothing is ever beyond retention; by_user_kind's horizon is 1h + 5m.
      expect(stats.groupBys.by_user.lateBeyondRetention).toBe(0);
      let wm = -Infinity;
      let expectedLate = 0;
      for (const e of all) {
        wm = Math.max(wm, e.ts as number);
        if (e.kind !== 'ignored' && e.kind !== null && (e.ts as number) < wm - 3_900_000) expectedLate++;
      }
      expect(expectedLate).toBeGreaterThan(0);
      expect(stats.groupBys.by_user_kind.lateBeyondRetention).toBe(expectedLate);
      expect(stats.filtered).toBe(all.filter((e) => e.kind === 'ignored').length);
      // Retention keeps storage bounded: far fewer tiles than events x levels.
      const s = await store.stats();
      expect(s.byGroupBy[groupById(byUserKind)].tiles).toBeLessThan(all.length);
      await log.close();
      await store.close();
    });

    it('resumes from the committed offset with its counters after a restart', async () => {
      const store = makeStore!();
      const logDir = tempDir();
      cleanups.push(logDir.remove);
      const log = openFileLog(logDir.path);
      const [topic] = streamTopics(events, groupBys, 1);
      const all = randomEvents(3, 400);
      await ingestEvents(log, events, groupBys, all.slice(0, 250));
      const w1 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 });
      await w1.drain();
      const before = w1.stats();
      await ingestEvents(log, events, groupBys, all.slice(250));
      const w2 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 });
      expect(w2.stats().nextOffset).toBe(250);
      expect(w2.stats().groupBys).toEqual(before.groupBys);
      await w2.drain();
      expect(w2.stats().nextOffset).toBe(400);
      await expectUsersMatchOracle(store, all);
      await log.close();
      await store.close();
    });

    it('applies group-bys sharing one store id once (invariant 9)', async () => {
      // Same computation as by_user under another name: same store id, so the same tiles and runs.
      const twin = userStats('by_user_twin');
      expect(groupById(twin)).toBe(groupById(byUser));
      const store = makeStore!();
      const logDir = tempDir();
      cleanups.push(logDir.remove);
      const log = openFileLog(logDir.path);
      const all3 = [byUser, twin, byUserKind];
      const [topic] = streamTopics(events, all3, 1);
      const all = randomEvents(9, 500);
      await ingestEvents(log, events, all3, all);
      // Small runs and batches: appends and roll-ups of the shared entities both happen many times.
      const w = await createStreamWorker({
        log,
        store,
        topic,
        partition: 0,
        batchSize: 37,
        maxRunBytes: 300,
      });
      await w.drain();
      const { by_user, by_user_twin } = w.stats().groupBys;
      expect(by_user_twin).toEqual({ ...by_user, cpuMs: 0 });
      expect(by_user.applied).toBeGreaterThan(0);
      const fetch = createFetchGroupBys(store);
      const t = Math.max(...all.map((e) => e.ts as number)) + 1;
      for (let u = 0; u < 12; u++) {
        const [[a], [b]] = await fetch(
          [
            { id: groupById(byUser), groupBy: byUser, keys: [`u${u}`] },
            { id: groupById(twin), groupBy: twin, keys: [`u${u}`] },
          ],
          t,
        );
        expect(closeTo(a.values, naive(all, 'by_user', `u${u}`, t))).toBe(true);
        expect(b.values).toEqual(a.values);
      }
      await log.close();
      await store.close();
    });
  });
}

describe('batch sizes', () => {
  it('bounds batches by event bytes too, and still applies every event', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const store = openStore({ kind: 'lmdb', path: d.path });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(4, 300);
    await ingestEvents(log, events, groupBys, all);
    const eventBytes = JSON.stringify(all[0]).length;
    const sizes: number[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 200,
      maxBatchBytes: 10 * eventBytes,
      onCommit: (c) => sizes.push(c.records),
    });
    await w.drain();
    // The first read knows no event sizes yet; later ones take ~10 events' worth.
    expect(sizes[0]).toBe(200);
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(20);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(300);
    await expectUsersMatchOracle(store, all);
    await log.close();
    await store.close();
  });
});

describe('fencing (worker invariant 8)', () => {
  /** An LMDB store whose commits check `expect` like the stores' contract says (whatever they implement). */
  function fencingStore(inner: OnlineStore): OnlineStore & { commits: CommitBatch[] } {
    const commits: CommitBatch[] = [];
    const commit = async (batch: CommitBatch) => {
      commits.push(batch);
      const names = Object.keys(batch.expect ?? {});
      const stored = await inner.readOffsets(names);
      for (const name of names) {
        const want = batch.expect![name];
        if ((stored[name] ?? null) !== want)
          throw new Error(`fenced: offset '${name}' is ${stored[name]} but this writer expected ${want}`);
      }
      return inner.commit(batch);
    };
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === 'commit') return commit;
        if (prop === 'commits') return commits;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as OnlineStore & { commits: CommitBatch[] };
  }

  it('a second worker on the same partition stops the first for good, and never double-counts', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    const store = fencingStore(inner);
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(5, 300);
    await ingestEvents(log, events, groupBys, all.slice(0, 100));
    const w1 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 40 });
    await w1.drain();
    expect(store.commits[0].expect).toEqual({ 'stream/events/0': null });
    expect(store.commits.at(-1)!.expect).toEqual({ 'stream/events/0': '80' });
    // A second worker takes over the partition and commits past w1's offset.
    const w2 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 40 });
    await ingestEvents(log, events, groupBys, all.slice(100, 200));
    await w2.drain();
    await ingestEvents(log, events, groupBys, all.slice(200));
    await expect(w1.step()).rejects.toThrow(/stopped: another writer committed this partition \(fenced:/);
    // Stopped for good: no more reads or commits, and run() rejects instead of retrying.
    const commits = store.commits.length;
    await expect(w1.step()).rejects.toThrow(/stopped/);
    await expect(w1.run(new AbortController().signal)).rejects.toThrow(/stopped/);
    expect(store.commits.length).toBe(commits);
    await w2.drain();
    expect(w2.stats().nextOffset).toBe(300);
    await expectUsersMatchOracle(store, all);
    await log.close();
    await inner.close();
  });
});

describe('a commit fenced by its own first send (worker invariant 8)', () => {
  it('is adopted, not a reason to stop: a client resent a commit that was applied', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    let commits = 0;
    let resent = 0;
    // The 2nd and 4th commits are applied, then sent again (as ioredis on a Cluster resends a command whose
    // connection closed): the resend is fenced by the first send, and its error is what the worker gets.
    const store = aroundCommit(inner, async (batch, commit) => {
      const r = await commit(batch);
      if (++commits === 2 || commits === 4) {
        resent++;
        await commit(batch); // throws 'fenced:' (the LMDB store checks `expect`)
        throw new Error('the resend was not fenced');
      }
      return r;
    });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(37, 300);
    await ingestEvents(log, events, groupBys, all);
    const reported: number[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 50,
      onCommit: (c) => reported.push(c.nextOffset),
    });
    let steps = 0;
    while (w.stats().nextOffset < 300) {
      expect(await w.step()).toBe(50);
      if (++steps > 6) throw new Error('the worker redid a batch');
    }
    expect(resent).toBe(2);
    // Adopted batches are reported like the others.
    expect(reported).toEqual([50, 100, 150, 200, 250, 300]);
    // 6 batches of 50, each committed once: a redone batch would add a commit and count its events twice.
    expect(commits).toBe(6);
    expect(w.stats()).toMatchObject({ recordsRead: 300, batches: 6 });
    await expectUsersMatchOracle(store, all);
    // A stored offset other than the one the commit wrote still stops the worker for good.
    await inner.commit({ tiles: [], offsets: { 'stream/events/0': '250' } });
    await ingestEvents(log, events, groupBys, randomEvents(38, 10));
    await expect(w.step()).rejects.toThrow(/stopped: another writer committed this partition \(fenced:/);
    await expect(w.step()).rejects.toThrow(/stopped/);
    await log.close();
    await inner.close();
  });
});

describe('a failed commit that lands late and fences the redo of its batch (worker invariant 8)', () => {
  it('is adopted: the worker goes on from it instead of stopping', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    let commits = 0;
    let held: CommitBatch | null = null;
    // The 2nd commit fails unsent ("connection lost") and stays in flight; the redo of its batch finds it
    // applied first (sent after the reconnect), so the redo is fenced by it.
    const store = aroundCommit(inner, async (batch, commit) => {
      if (++commits === 2) {
        held = batch;
        throw new Error('connection lost');
      }
      if (held !== null) {
        const late = held;
        held = null;
        await commit(late);
      }
      return commit(batch);
    });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(43, 300);
    await ingestEvents(log, events, groupBys, all);
    const reported: number[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 50,
      onCommit: (c) => reported.push(c.nextOffset),
    });
    const errors: string[] = [];
    while (w.stats().nextOffset < 300) {
      try {
        await w.step();
      } catch (err) {
        errors.push((err as Error).message);
        if (errors.length > 3) throw err;
      }
    }
    expect(errors).toEqual(['connection lost']);
    expect(reported).toEqual([50, 100, 150, 200, 250, 300]);
    expect(w.stats()).toMatchObject({ recordsRead: 300, batches: 6 });
    await expectUsersMatchOracle(store, all);
    await log.close();
    await inner.close();
  });
});

describe('two workers on one partition with the same batches (worker invariant 8)', () => {
  it('reach the same offsets, and still one of them stops for good: commit ids tell them apart', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const store = openStore({ kind: 'lmdb', path: d.path });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(41, 300);
    await ingestEvents(log, events, groupBys, all);
    const w1 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 40 });
    const w2 = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 40 });
    // In lock step: each reads the same 40 records from the same offset; the second to commit is fenced.
    const stopped: string[] = [];
    const live = [w1, w2];
    for (let round = 0; round < 20 && live.some((w) => w.stats().nextOffset < 300); round++)
      for (const w of [...live]) {
        try {
          await w.step();
        } catch (err) {
          stopped.push((err as Error).message);
          live.splice(live.indexOf(w), 1);
        }
      }
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatch(/stopped: another writer committed this partition \(fenced:/);
    expect(live).toHaveLength(1);
    expect(live[0].stats().nextOffset).toBe(300);
    expect((await store.readOffsets(['stream/events/0']))['stream/events/0']).toBe('300');
    await expectUsersMatchOracle(store, all);
    await log.close();
    await store.close();
  });
});

describe("the batch's write objects (reused from batch to batch)", () => {
  it('are not changed while a commit that failed may still hold them, and the features stay exact', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    const text = (b: CommitBatch) =>
      JSON.stringify({
        tiles: b.tiles.map((t) => [t.groupBy, t.key, t.level, t.start, t.bytes && [...t.bytes]]),
        runs: (b.runs ?? []).map((r) => [r.groupBy, r.key, r.bytes && [...r.bytes]]),
      });
    // Every 3rd commit fails after taking a copy of its batch, which it keeps (as a store still sending it
    // might); each batch's writes must say the same when the worker has gone on.
    const kept: [CommitBatch, string][] = [];
    let commits = 0;
    let failed = 0;
    const store = aroundCommit(inner, async (batch, commit) => {
      if (++commits % 3 === 0) {
        kept.push([batch, text(batch)]);
        failed++;
        throw new Error('store unavailable');
      }
      return commit(batch);
    });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(31, 400);
    await ingestEvents(log, events, groupBys, all);
    // Small runs, so most batches roll up (tile writes) as well as append (run writes).
    const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 40, maxRunBytes: 64 });
    while (w.stats().nextOffset < 400) {
      try {
        await w.step();
      } catch (err) {
        expect((err as Error).message).toBe('store unavailable');
      }
    }
    expect(failed).toBeGreaterThan(3);
    expect(kept.some(([b]) => b.tiles.length > 0 && (b.runs ?? []).length > 0)).toBe(true);
    for (const [batch, was] of kept) expect(text(batch)).toBe(was);
    await expectUsersMatchOracle(store, all);
    await log.close();
    await inner.close();
  });
});

describe('a commit whose reply is lost (worker invariant 8)', () => {
  it('is adopted, not redone or fenced: the worker goes on from the offset it committed', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    let commits = 0;
    let lost = 0;
    // The 2nd and 4th commits are applied, then "the connection drops" before the reply.
    const store = aroundCommit(inner, async (batch, commit) => {
      const r = await commit(batch);
      if (++commits === 2 || commits === 4) {
        lost++;
        throw new Error('connection lost');
      }
      return r;
    });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(23, 300);
    await ingestEvents(log, events, groupBys, all);
    const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 });
    let errors = 0;
    while (w.stats().nextOffset < 300) {
      try {
        await w.step();
      } catch (err) {
        expect((err as Error).message).toBe('connection lost');
        errors++;
      }
    }
    expect(lost).toBe(2);
    expect(errors).toBe(2);
    // 6 batches of 50, each committed once: a redone batch would add a commit and count its events twice.
    expect(commits).toBe(6);
    expect((await inner.readOffsets(['stream/events/0']))['stream/events/0']).toBe('300');
    await expectUsersMatchOracle(store, all);
    await log.close();
    await inner.close();
  });
});

describe('a lost commit whose check fails too (store still down)', () => {
  it('is checked again on the next step, then adopted: not redone, not fenced', async () => {
    const d = tempDir();
    const logDir = tempDir();
    cleanups.push(d.remove, logDir.remove);
    const inner = openStore({ kind: 'lmdb', path: d.path });
    let commits = 0;
    let failReads = 0;
    // The 2nd commit is applied, then the connection drops before the reply, and the next read fails too.
    const store = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'commit')
          return async (batch: CommitBatch) => {
            const r = await target.commit(batch);
            if (++commits === 2) {
              failReads = 1;
              throw new Error('connection lost');
            }
            return r;
          };
        if (prop === 'readOffsets')
          return async (names?: readonly string[]) => {
            if (failReads > 0) {
              failReads--;
              throw new Error('still down');
            }
            return target.readOffsets(names);
          };
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as OnlineStore;
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const all = randomEvents(29, 200);
    await ingestEvents(log, events, groupBys, all);
    const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 50 });
    const errors: string[] = [];
    while (w.stats().nextOffset < 200) {
      try {
        await w.step();
      } catch (err) {
        errors.push((err as Error).message);
        if (errors.length > 5) throw err;
      }
    }
    expect(errors).toEqual(['connection lost', 'still down']);
    // 4 batches of 50, each committed once.
    expect(commits).toBe(4);
    await expectUsersMatchOracle(store, all);
    await log.close();
    await inner.close();
  });
});

describe('partitioned log (re-keyed topics, one worker per partition)', () => {
  it('matches the oracle with 3 partitions on the file log', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`, { partitions: 3 });
    const all = randomEvents(17, 900);
    for (let i = 0; i < all.length; i += 300)
      await ingestEvents(log, events, groupBys, all.slice(i, i + 300));
    const workers = [];
    for (const topic of streamTopics(events, groupBys, 3))
      for (let p = 0; p < 3; p++)
        workers.push(await createStreamWorker({ log, store, topic, partition: p, batchSize: 100 }));
    expect(workers.length).toBe(6);
    await Promise.all(workers.map((w) => w.drain()));
    // Every event reached each topic exactly once across its partitions.
    const perTopic = new Map<string, number>();
    for (const w of workers) {
      const s = w.stats();
      perTopic.set(s.topic, (perTopic.get(s.topic) ?? 0) + s.nextOffset);
    }
    expect([...perTopic.values()]).toEqual([all.length, all.length]);
    // seq differs from the single-partition case only between entities, so values equal the oracle
    // computed with each event's position in the input as its seq (ties are within one entity).
    const fetch = createFetchGroupBys(store);
    const t = Math.max(...all.map((e) => e.ts as number)) + 1;
    for (let u = 0; u < 12; u++) {
      const keys = ['a', 'b', 'c'].map((k) => `u${u}\u001f${k}`);
      const [[v], uk] = await fetch(
        [
          { id: groupById(byUser), groupBy: byUser, keys: [`u${u}`] },
          { id: groupById(byUserKind), groupBy: byUserKind, keys },
        ],
        t,
      );
      expect(closeTo(v.values, naive(all, 'by_user', `u${u}`, t))).toBe(true);
      keys.forEach((k, i) => expect(closeTo(uk[i].values, naive(all, 'by_user_kind', k, t))).toBe(true));
    }
    await log.close();
    await store.close();
  });
});

describe('watermark guard', () => {
  it('one event with a bogus future time does not make later events late or evict live tiles', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const [topic] = streamTopics(events, groupBys, 1);
    const now = Date.now();
    const evs = [
      { user: 'u1', kind: 'a', amount: 1, ts: now - 60_000 },
      { user: 'u1', kind: 'a', amount: 2, ts: now + 10 * 365 * 86_400_000 }, // a broken client clock
      { user: 'u1', kind: 'a', amount: 4, ts: now - 30_000 },
    ];
    await ingestEvents(log, events, groupBys, evs);
    const w = await createStreamWorker({ log, store, topic, partition: 0 });
    await w.drain();
    expect(w.stats().groupBys.by_user_kind.lateBeyondRetention).toBe(0);
    expect(w.stats().watermark).toBeLessThanOrEqual(Date.now() + 60_000);
    const [[v]] = await createFetchGroupBys(store)(
      [{ id: groupById(byUserKind), groupBy: byUserKind, keys: ['u1\u001fa'] }],
      now,
    );
    expect(v.values).toEqual([[2, 2], [5]]);
    await log.close();
    await store.close();
  });
});

describe('exactness of historical fetches (QA F2)', () => {
  it('is exact within the exact-history horizon and flags earlier fetches inexact, never silently ok', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const [topic] = streamTopics(events, groupBys, 1);
    const exactHistoryMs = 30 * 60_000;
    const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 61, exactHistoryMs });
    const all = randomEvents(23, 1200, 5);
    await ingestEvents(log, events, groupBys, all);
    await w.drain();
    const wm = w.stats().watermark!;
    const fetch = createFetchGroupBys(store);
    const r = rng(5);
    let exact = 0;
    let flagged = 0;
    for (let q = 0; q < 160; q++) {
      // Half within the horizon [wm - H, wm], half anywhere in the stream's history.
      const t =
        q % 2 === 0
          ? wm - Math.floor(r() * (exactHistoryMs + 1))
          : T0 + Math.floor(r() * (wm - T0 - exactHistoryMs));
      const user = `u${Math.floor(r() * 5)}`;
      const kind = ['a', 'b', 'c'][Math.floor(r() * 3)];
      const [[u], [uk]] = await fetch(
        [
          { id: groupById(byUser), groupBy: byUser, keys: [user] },
          { id: groupById(byUserKind), groupBy: byUserKind, keys: [`${user}\u001f${kind}`] },
        ],
        t,
      );
      for (const [v, name, key] of [
        [u, 'by_user', user],
        [uk, 'by_user_kind', `${user}\u001f${kind}`],
      ] as const) {
        if (t >= wm - exactHistoryMs) expect(v.status).not.toBe('inexact');
        if (v.status === 'inexact') {
          expect(v.values.flat().every((x) => x === null)).toBe(true);
          flagged++;
          continue;
        }
        const want = naive(all, name, key, t);
        if (!closeTo(v.values, want))
          expect({ t, name, key, got: v.values }).toEqual({ t, name, key, got: want });
        exact++;
      }
    }
    expect(exact).toBeGreaterThan(80);
    expect(flagged).toBeGreaterThan(20);
    await log.close();
    await store.close();
  });

  it('a key whose tiles all expired keeps its exact point: inexact before it, missing_key after', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const [topic] = streamTopics(events, groupBys, 1);
    const H = 3_600_000;
    const day = 86_400_000;
    await ingestEvents(log, events, groupBys, [
      { user: 'u1', kind: 'a', amount: 1, ts: T0 },
      { user: 'u2', kind: 'a', amount: 2, ts: T0 + day },
      // Late beyond retention for u1|a: dropped, and compacting u1|a to T0 + day - H empties it.
      { user: 'u1', kind: 'a', amount: 4, ts: T0 + 1 },
    ]);
    const w = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 1 });
    await w.drain();
    expect(w.stats().groupBys.by_user_kind.lateBeyondRetention).toBe(1);
    const fetch = createFetchGroupBys(store);
    const id = groupById(byUserKind);
    const at = async (t: number) =>
      (await fetch([{ id, groupBy: byUserKind, keys: ['u1\u001fa'] }], t))[0][0];
    expect(await at(T0 + 2)).toEqual({ status: 'inexact', values: [[null, null], [null]] });
    expect(await at(T0 + day - H)).toEqual({ status: 'missing_key', values: [[0, 0], [null]] });
    expect((await store.stats()).byGroupBy[id].entities).toBe(1); // u2|a; u1|a holds only its marker
    await log.close();
    await store.close();
  });
});

describe('hot keys (worker invariant 6, maxTilesPerKey)', () => {
  it('keep at most maxTilesPerKey tiles: exact from their exact-from time (always by the newest event), inexact before, never wrong', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const [topic] = streamTopics(events, groupBys, 1);
    // Above the ~630 tiles a fetch at the newest event needs (10m windows hop by the second), far below
    // the ~5000 a full hour of exact history holds.
    const maxTilesPerKey = 800;
    const hotKeyExactMs = 2000;
    const r = rng(77);
    // One hot user: 4000 events in distinct milliseconds over 20 minutes (its 1 ms tiles alone would be
    // 4000 within the default hour of exact history), and a quiet one.
    const all: Row[] = [];
    for (let i = 0; i < 4000; i++)
      all.push({
        user: 'hot',
        kind: 'a',
        amount: Math.floor(r() * 100),
        ts: T0 + i * 300 + Math.floor(r() * 300),
      });
    for (let i = 0; i < 30; i++) all.push({ user: 'quiet', kind: 'b', amount: i, ts: T0 + i * 40_000 });
    all.sort((a, b) => (a.ts as number) - (b.ts as number));
    await ingestEvents(log, events, groupBys, all);
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 700,
      maxTilesPerKey,
      hotKeyExactMs,
    });
    await w.drain();
    const wm = w.stats().watermark!;
    const [hot, quiet] = await store.readTiles([
      { groupBy: groupById(byUser), key: 'hot' },
      { groupBy: groupById(byUser), key: 'quiet' },
    ]);
    const tileCount = (list: typeof hot) =>
      list.filter((t) => t.level !== EVENT_RUN_LEVEL).length - markerCount(list);
    expect(tileCount(hot)).toBeLessThanOrEqual(maxTilesPerKey);
    const hotExactFrom = readExactFrom(hot);
    expect(hotExactFrom).toBeGreaterThan(wm - 3_600_000); // the budget bit: less than the default hour
    expect(hotExactFrom).toBeLessThanOrEqual(wm - hotKeyExactMs);
    expect(readExactFrom(quiet)).toBe(-Infinity); // a quiet key keeps its whole exact history
    const fetch = createFetchGroupBys(store);
    let exact = 0;
    let flagged = 0;
    for (let q = 0; q < 120; q++) {
      const t = q < 4 ? wm + q : wm - Math.floor(r() * 25 * 60_000);
      for (const user of ['hot', 'quiet']) {
        const [[v]] = await fetch([{ id: groupById(byUser), groupBy: byUser, keys: [user] }], t);
        if (user === 'quiet' || t >= hotExactFrom) expect(v.status, `${user} @${t}`).not.toBe('inexact');
        if (v.status === 'inexact') {
          expect(v.values.flat().every((x) => x === null)).toBe(true);
          flagged++;
          continue;
        }
        const want = naive(all, 'by_user', user, t);
        if (!closeTo(v.values, want)) expect({ t, user, got: v.values }).toEqual({ t, user, got: want });
        exact++;
      }
    }
    expect(flagged).toBeGreaterThan(10);
    expect(exact).toBeGreaterThan(100);
    await log.close();
    await store.close();
  });

  it('stay exact at the current time when event clocks run ahead of the wall clock (up to maxFutureMs)', async () => {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const [topic] = streamTopics(events, groupBys, 1);
    const r = rng(78);
    // A hot key whose producer clock is 30 s ahead: the watermark ends ~30 s past now, so compaction bounded
    // by the watermark alone would leave fetches at now inexact.
    const now = Date.now();
    const all: Row[] = [];
    for (let i = 0; i < 3000; i++)
      all.push({ user: 'hot', kind: 'a', amount: Math.floor(r() * 100), ts: now - 60_000 + i * 30 });
    await ingestEvents(log, events, groupBys, all);
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 500,
      maxTilesPerKey: 800,
      hotKeyExactMs: 2000,
    });
    await w.drain();
    expect(w.stats().watermark!).toBeGreaterThan(Date.now() + 20_000);
    const [hot] = await store.readTiles([{ groupBy: groupById(byUser), key: 'hot' }]);
    expect(readExactFrom(hot)).toBeGreaterThan(now - 3_600_000); // compacted for the tile budget
    const fetch = createFetchGroupBys(store);
    for (const t of [Date.now(), Date.now() + 500]) {
      const [[v]] = await fetch([{ id: groupById(byUser), groupBy: byUser, keys: ['hot'] }], t);
      expect(v.status, `hot @${t}`).not.toBe('inexact');
      const want = naive(all, 'by_user', 'hot', t);
      if (!closeTo(v.values, want)) expect({ t, got: v.values }).toEqual({ t, got: want });
    }
    await log.close();
    await store.close();
  });
});

/** Every window value of `groupBy` for `key` at `t`, from the stored tiles and run through a TileSet. */
async function valuesViaTileSet(
  store: OnlineStore,
  groupBy: GroupByDef,
  key: string,
  t: number,
): Promise<unknown[][] | 'inexact'> {
  const { agg, windows } = compileGroupBy(groupBy);
  const [stored] = await store.readTiles([{ groupBy: groupById(groupBy), key }]);
  if (t < readExactFrom(stored)) return 'inexact';
  const tiles = new TileSet(agg, windows);
  for (let i = markerCount(stored); i < stored.length; i++)
    tiles.addEncodedTile(stored[i].level, stored[i].start, stored[i].bytes);
  return groupBy.aggregations.map((a, i) => a.windows.map((w) => agg.finalize(tiles.query(t, w), i)));
}

describe('event runs (worker invariant 7)', () => {
  for (const [name, makeStore] of stores) {
    it.skipIf(!makeStore)(
      `${name}: values equal the oracle whatever the run size limit, cache sizes and restarts`,
      async () => {
        // [run limit, cached entities, loaded tile sets]
        for (const [maxRunBytes, maxCachedRuns, maxCachedEntities] of [
          [0, 500_000, 20_000],
          [64, 3, 2],
          [100_000, 500_000, 20_000],
          [300, 5, 20_000],
          [300, 500_000, 20_000],
        ]) {
          const store = makeStore!();
          const logDir = tempDir();
          cleanups.push(logDir.remove);
          const log = openFileLog(logDir.path);
          const [topic] = streamTopics(events, groupBys, 1);
          const all = randomEvents(maxRunBytes + maxCachedRuns + maxCachedEntities + 5, 600);
          const r = rng(maxRunBytes + maxCachedRuns + 11);
          const open = () =>
            createStreamWorker({
              log,
              store,
              topic,
              partition: 0,
              batchSize: 1 + Math.floor(r() * 80),
              maxRunBytes,
              maxCachedRuns,
              maxCachedEntities,
            });
          let worker = await open();
          let runSeen = false;
          for (let i = 0; i < all.length; i += 100) {
            await ingestEvents(log, events, groupBys, all.slice(i, i + 100));
            // Restarts forget every run size: the worker must still bound and roll up runs.
            if (r() < 0.3) worker = await open();
            await worker.drain();
            const seen = all.slice(0, i + 100);
            const wm = Math.max(...seen.map((e) => e.ts as number));
            for (let q = 0; q < 4; q++) {
              const t = wm + Math.floor(r() * 2 * 3_600_000);
              const user = `u${Math.floor(r() * 12)}`;
              const kind = ['a', 'b', 'c'][Math.floor(r() * 3)];
              const u = await valuesViaTileSet(store, byUser, user, t);
              expect(closeTo(u, naive(seen, 'by_user', user, t)), `${maxRunBytes} ${user}@${t}`).toBe(true);
              const key = `${user}\u001f${kind}`;
              const uk = await valuesViaTileSet(store, byUserKind, key, t);
              expect(closeTo(uk, naive(seen, 'by_user_kind', key, t)), `${maxRunBytes} ${key}@${t}`).toBe(
                true,
              );
            }
            // Runs stay bounded: at most one batch's chunk past the limit before the next roll-up.
            const stored = await store.readTiles(
              Array.from({ length: 12 }, (_, u) => ({ groupBy: groupById(byUser), key: `u${u}` })),
            );
            for (const list of stored) {
              const run = list.at(-1)?.level === EVENT_RUN_LEVEL ? list.at(-1)!.bytes.length : 0;
              if (run > 0) runSeen = true;
              expect(run).toBeLessThanOrEqual(maxRunBytes + 80 * 64);
            }
          }
          expect(runSeen).toBe(maxRunBytes > 0);
          await log.close();
          await store.close();
        }
      },
      60_000,
    );
  }
});
