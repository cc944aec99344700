import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startRedis } from '../support/servers.ts';
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

const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const c of cleanups) c();
});

const stores: [string, (() => OnlineStore) | null][] = [
  [
    'lmdb',
    () => {
      const d = tempDir();
      cleanups.push(d.remove);
      return openStore({ kind: 'lmdb', path: d.path });
    },
  ],
  ['redis', redis ? () => openStore({ kind: 'redis', url: redis.url, prefix: 'up:' }) : null],
];

for (const [name, makeStore] of stores) {
  describe.skipIf(!makeStore)(`batch upload then streaming on ${name}`, () => {
    it(
      'uploads history before the cutoff, streams the rest, and equals the oracle',
      { timeout: 30_000 },
      async () => {
        const repo = tempDir();
        cleanups.push(repo.remove);
        const all = randomEvents(21, 900);
        mkdirSync(join(repo.path, 'data'));
        writeFileSync(
          join(repo.path, 'data', 'events.jsonl'),
          all.map((e) => JSON.stringify(e)).join('\n') + '\n',
        );
        const sorted = all.map((e) => e.ts as number).sort((a, b) => a - b);
        const until = sorted[500] + 1;
        const store = makeStore!();

        for (const g of groupBys) {
          const res = await uploadGroupBy({ groupBy: g, until, store, baseDir: repo.path });
          expect(res.cutoff).toBe(until);
          expect(res.events).toBeGreaterThan(0);
          // idempotent: a second run replaces the same tiles
          const again = await uploadGroupBy({ groupBy: g, until, store, baseDir: repo.path });
          expect(again.tilesWritten).toBe(res.tilesWritten);
        }
        expect(await store.readOffsets([`upload/${groupById(byUser)}`])).toEqual({
          [`upload/${groupById(byUser)}`]: String(until),
        });

        // The stream carries events from a point before the cutoff: those with ts < until are skipped.
        const logDir = tempDir();
        cleanups.push(logDir.remove);
        const log = openFileLog(logDir.path);
        const firstStreamed = all.findIndex((e) => (e.ts as number) >= until) - 20;
        const [topic] = streamTopics(events, groupBys, 1);
        const worker = await createStreamWorker({ log, store, topic, partition: 0, batchSize: 64 });
        const fetch = createFetchGroupBys(store);
        const r = rng(4);
        for (let i = firstStreamed; i < all.length; i += 100) {
          await ingestEvents(log, events, groupBys, all.slice(i, i + 100));
          await worker.drain();
          // Known online: everything uploaded (ts < until, wherever it sits in the file) + what was streamed.
          const seen = all.filter(
            (e, idx) => (e.ts as number) < until || (idx >= firstStreamed && idx < i + 100),
          );
          const wm = Math.max(until, ...seen.slice(firstStreamed).map((e) => e.ts as number));
          for (let q = 0; q < 4; q++) {
            const t = q === 0 ? wm : wm + Math.floor(r() * 3 * 3_600_000);
            const user = `u${Math.floor(r() * 12)}`;
            const [[u]] = await fetch([{ id: groupById(byUser), groupBy: byUser, keys: [user] }], t);
            const want = naive(seen, 'by_user', user, t);
            if (!closeTo(u.values, want)) expect({ t, user, v: u.values }).toEqual({ t, user, v: want });
            for (const kind of ['a', 'b']) {
              const key = `${user}\u001f${kind}`;
              const [[uk]] = await fetch(
                [{ id: groupById(byUserKind), groupBy: byUserKind, keys: [key] }],
                t,
              );
              const wantUk = naive(seen, 'by_user_kind', key, t);
              if (!closeTo(uk.values, wantUk))
                expect({ t, key, v: uk.values }).toEqual({ t, key, v: wantUk });
            }
          }
        }
        const skipped = all
          .slice(firstStreamed)
          .filter((e) => e.kind !== 'ignored' && (e.ts as number) < until).length;
        expect(skipped).toBeGreaterThan(0);
        expect(worker.stats().groupBys.by_user.beforeUploadCutoff).toBe(skipped);
        await log.close();
        await store.close();
      },
    );
  });
}
