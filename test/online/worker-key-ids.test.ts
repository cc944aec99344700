/**
 * Interned key values (worker invariant 1): routing finds entities by the ids of their key values, shared by
 * the group-bys keyed on a column (by_user and by_user_kind both read `user`), and an id is freed and
 * reused once no cached entity holds it. An id reused while an entity still held it would route one key's
 * events to another key's entity: with caches of a few entities, ids are freed and reused all the time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import {
  byUser,
  byUserKind,
  closeTo,
  events,
  groupBys,
  naive,
  randomEvents,
  rng,
  tempDir,
} from './fixtures.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('interned key values (worker invariant 1)', () => {
  it('route every event to its own entity while evictions free and reuse ids', async () => {
    const storeDir = tempDir();
    const logDir = tempDir();
    cleanups.push(storeDir.remove, logDir.remove);
    const store = openStore({ kind: 'lmdb', path: storeDir.path });
    const log = openFileLog(logDir.path);
    const [topic] = streamTopics(events, groupBys, 1);
    const r = rng(5);
    const open = () =>
      createStreamWorker({
        log,
        store,
        topic,
        partition: 0,
        batchSize: 1 + Math.floor(r() * 60),
        maxCachedRuns: 3,
        maxCachedEntities: 2,
        maxRunBytes: 64,
      });
    let worker = await open();
    const all = randomEvents(17, 1200, 40);
    const fetch = createFetchGroupBys(store);
    const users = Array.from({ length: 40 }, (_, u) => `u${u}`);
    const pairs = users.flatMap((u) => ['a', 'b', 'c'].map((k) => `${u}\u001f${k}`));
    for (let i = 0; i < all.length; i += 200) {
      await ingestEvents(log, events, groupBys, all.slice(i, i + 200));
      if (r() < 0.3) worker = await open(); // a fresh worker interns from scratch
      await worker.drain();
      const seen = all.slice(0, i + 200);
      const t = Math.max(...seen.map((e) => e.ts as number)) + 1;
      const [forUsers, forPairs] = await fetch(
        [
          { id: groupById(byUser), groupBy: byUser, keys: users },
          { id: groupById(byUserKind), groupBy: byUserKind, keys: pairs },
        ],
        t,
      );
      users.forEach((u, k) => {
        const expected = naive(seen, 'by_user', u, t);
        if (!closeTo(forUsers![k]!.values, expected))
          expect({ u, t, got: forUsers![k]!.values }).toEqual({ u, t, got: expected });
      });
      pairs.forEach((key, k) => {
        const expected = naive(seen, 'by_user_kind', key, t);
        if (!closeTo(forPairs![k]!.values, expected))
          expect({ key, t, got: forPairs![k]!.values }).toEqual({ key, t, got: expected });
      });
    }
    await log.close();
    await store.close();
  }, 60_000);
});
