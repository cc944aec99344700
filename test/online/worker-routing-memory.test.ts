/**
 * The stream worker's routing tables (interned key values, the entity indexes `byId` and `byIds`) follow
 * what it caches: a burst of keys grows them, the evictions after the commit shrink them back (ids are
 * renumbered), and routing stays right through the renumbering.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { checkRouting, createStreamWorker } from '../../src/online/worker.ts';
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
} from './fixtures.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('worker routing tables', () => {
  // Eviction passes the group-bys in turn, so by_user_kind, with fewer entities, loses all of theirs next to
  // by_user: alone, its multi-column entities stay cached through the renumberings.
  it.each([
    ['by_user and by_user_kind', groupBys, ['by_user']],
    ['by_user_kind alone', [byUserKind], ['by_user_kind']],
  ])(
    'shrink back to what is cached after bursts of distinct keys, and route every event right (%s)',
    async (_, defs, kept) => {
      const storeDir = tempDir();
      const logDir = tempDir();
      cleanups.push(storeDir.remove, logDir.remove);
      const store = openStore({ kind: 'lmdb', path: storeDir.path });
      const log = openFileLog(logDir.path);
      const [topic] = streamTopics(events, defs, 1);
      const maxCachedRuns = 40;
      const worker = await createStreamWorker({
        log,
        store,
        topic,
        partition: 0,
        batchSize: 1500,
        readChunk: 500,
        maxCachedRuns,
        maxCachedEntities: 5,
      });
      // 3000 users: a batch meets ~1000 of them, far more than the cache keeps, and later batches meet
      // users cached before a renumbering.
      const all = randomEvents(23, 9000, 3000);
      const fetch = createFetchGroupBys(store);
      const r = rng(9);
      const cachedAfterBurst = new Set<string>();
      for (let i = 0; i < all.length; i += 3000) {
        await ingestEvents(log, events, defs, all.slice(i, i + 3000));
        for (;;) {
          const records = await worker.step();
          if (records === 0) break;
          const sizes = checkRouting(worker);
          // Eviction leaves at most maxCachedRuns entities; the tables are then a few times that, or their
          // smallest sizes (256 ids, 1024 slots), never the ~1000 keys a batch brought.
          expect(sizes.cachedEntities).toBeLessThanOrEqual(maxCachedRuns);
          for (const d of sizes.dicts) {
            expect(d.held).toBeLessThanOrEqual(maxCachedRuns);
            expect(d.interned).toBe(d.held);
            expect(d.made).toBeLessThanOrEqual(256);
            expect(d.refs).toBeLessThanOrEqual(256);
          }
          // Entities stay cached through the renumberings (checkRouting checks they are found by their ids).
          for (const g of sizes.groups) if (g.entities > 0) cachedAfterBurst.add(g.name);
          for (const g of sizes.groups)
            expect(g.index).toBeLessThanOrEqual(g.name === 'by_user' ? 256 : 1024);
        }
        const seen = all.slice(0, i + 3000);
        const t = Math.max(...seen.map((e) => e.ts as number)) + 1;
        const users = Array.from({ length: 40 }, () => `u${Math.floor(r() * 3000)}`);
        const pairs = users.map((u, k) => `${u}\u001f${'abc'[k % 3]}`);
        const answers = await fetch(
          defs.map((g) => ({ id: groupById(g), groupBy: g, keys: g === byUser ? users : pairs })),
          t,
        );
        defs.forEach((g, d) =>
          (g === byUser ? users : pairs).forEach((key, k) => {
            const expected = naive(seen, g.name, key, t);
            if (!closeTo(answers[d]![k]!.values, expected))
              expect({ key, t, got: answers[d]![k]!.values }).toEqual({ key, t, got: expected });
          }),
        );
      }
      expect([...cachedAfterBurst]).toEqual(kept);
      // The shrinking above renumbered ids (and routing stayed right through it).
      expect(checkRouting(worker).dicts.some((d) => d.renumbered > 0)).toBe(true);
      await log.close();
      await store.close();
    },
    120_000,
  );

  // A column with few values kept by many entities: 3 users x 1000 kinds cached in by_user_kind, and each
  // batch brings 400 user values no entity keeps (their kind is null). Renumbering the user ids after each
  // batch would rehash the whole table to drop ~400 ids; the free ids are dropped (or reused) instead.
  it.each([
    ['held ids first', false],
    ['a held id past hundreds of free ones', true],
  ])(
    'drop free ids without renumbering when a column with few values is held by many entities (%s)',
    async (_, late) => {
      const storeDir = tempDir();
      const logDir = tempDir();
      cleanups.push(storeDir.remove, logDir.remove);
      const store = openStore({ kind: 'lmdb', path: storeDir.path });
      const log = openFileLog(logDir.path);
      const [topic] = streamTopics(events, [byUserKind], 1);
      const worker = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 2000 });
      let ts = T0;
      const warm: Row[] = [];
      for (let k = 0; k < 1000; k++)
        for (const u of ['u0', 'u1', 'u2']) warm.push({ user: u, kind: `k${k}`, amount: 1, ts: ts++ });
      let junk = 0;
      const batch = (users: readonly string[]): Row[] =>
        Array.from({ length: 2000 }, (_, i) =>
          i % 5 === 0
            ? { user: `junk${junk++}`, kind: null, amount: 1, ts: ts++ }
            : { user: users[i % users.length], kind: `k${i % 1000}`, amount: 1, ts: ts++ },
        );
      const rows = [...warm];
      // A user first met after a batch's new values: its id comes after theirs.
      if (late) rows.push(...batch(['u0', 'u1', 'u2']).map((e, i) => (i >= 1900 ? { ...e, user: 'u3' } : e)));
      for (let b = 0; b < 20; b++) rows.push(...batch(['u0', 'u1', 'u2']));
      await ingestEvents(log, events, [byUserKind], rows);
      let batches = 0;
      while ((await worker.step()) > 0) {
        batches++;
        const sizes = checkRouting(worker);
        const user = sizes.dicts.find((d) => d.column === 'user')!;
        // Bounded all the same: at most the held ids and one batch's new values (else at most 256 ids,
        // below which a dictionary is left as it is).
        expect(user.made).toBeLessThanOrEqual(late ? 4 + 400 : 256);
        expect(user.renumbered).toBe(0);
      }
      expect(batches).toBeGreaterThan(20);
      await log.close();
      await store.close();
    },
    120_000,
  );
});
