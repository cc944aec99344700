import { rmSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  approxPercentile,
  approxUniqueCount,
  avg,
  bottomK,
  col,
  count,
  eventSource,
  first,
  firstK,
  groupBy,
  histogram,
  join,
  last,
  lastK,
  max,
  min,
  stddev,
  sum,
  topK,
  uniqueCount,
  variance,
} from '../../src/index.ts';
import { featureNames } from '../../src/define/feature-refs.ts';
import type { Row } from '../../src/define/types.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { openStore } from '../../src/online/open-store.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded, type EmbeddedOptions, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { readOutput, rng, same, tempDir } from '../offline/support.ts';
import { startRedis } from '../support/servers.ts';

/**
 * DESIGN §1 end to end: events stream through the HTTP ingest, the log and the workers (with a restart in
 * the middle); at many query times the HTTP fetch with `at` must equal the offline backfill of a left row
 * with `ts = at`: ints exactly, floats to 1e-9, sketches identically. Batch upload covers the history
 * before a cutoff; the rest streams in time order.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2024, 4, 1);

const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function makeRepo(dataFile: string) {
  const tx = eventSource({
    name: 'tx',
    path: dataFile,
    format: 'jsonl',
    timeColumn: 'ts',
    schema: {
      card_id: col.string(),
      merchant_id: col.string(),
      amount: col.float().nullable(),
      ts: col.timestamp(),
    },
  });
  const card = groupBy({
    name: 'card',
    source: tx,
    keys: ['card_id'],
    aggregations: [
      count({ windows: ['10m', '1h', '1d', 'lifetime'] }),
      sum('amount', { windows: ['1h', '1d'] }),
      avg('amount', { windows: ['1d'] }),
      min('amount', { windows: ['1d'] }),
      max('amount', { windows: [{ size: '1d', hop: '10m' }] }),
      variance('amount', { windows: ['1d'] }),
      stddev('amount', { windows: ['lifetime'] }),
      first('amount', { windows: ['lifetime'] }),
      last('merchant_id', { windows: ['1d'] }),
      lastK('merchant_id', { k: 3, windows: ['1d'] }),
      topK('amount', { k: 3, windows: ['1d'] }),
      uniqueCount('merchant_id', { windows: ['1d'] }),
      approxUniqueCount('merchant_id', { windows: ['lifetime'] }),
      approxPercentile('amount', { percentiles: [0.5, 0.9], windows: ['1d'] }),
      histogram('merchant_id', { windows: ['1h'] }),
    ],
  });
  const merchant = groupBy({
    name: 'merchant',
    source: tx,
    keys: ['merchant_id'],
    aggregations: [
      count({ windows: ['1h', '1d'] }),
      sum('amount', { windows: ['10m'] }),
      uniqueCount('card_id', { windows: ['1d'] }),
      bottomK('amount', { k: 2, windows: ['1d'] }),
      firstK('card_id', { k: 2, windows: ['1h'] }),
    ],
  });
  const model = join({
    name: 'model',
    left: tx,
    parts: [
      { groupBy: card, keys: { card_id: 'card_id' } },
      { groupBy: merchant, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
    ],
    derive: {
      amount_vs_avg: {
        type: col.float(),
        fn: (f, row) =>
          row.amount === null || f.card_amount_avg_1d === null ? null : row.amount / f.card_amount_avg_1d,
      },
    },
  });
  return { sources: [tx], groupBys: [card, merchant], joins: [model], model };
}

/** Random events over ~3 days: bursts, ties in ts, null amounts, a few cards and merchants. */
function randomEvents(seed: number, n: number): Row[] {
  const r = rng(seed);
  const out: Row[] = [];
  let t = T0;
  for (let i = 0; i < n; i++) {
    const gap = r() < 0.15 ? 0 : r() < 0.7 ? Math.floor(r() * 3 * MIN) : Math.floor(r() * 2 * HOUR);
    t += gap;
    out.push({
      card_id: `c${Math.floor(r() ** 2 * 25)}`,
      merchant_id: `m${Math.floor(r() * 8)}`,
      amount: r() < 0.08 ? null : Math.round(r() * 50000) / 100,
      ts: t,
    });
  }
  return out;
}

interface Query {
  readonly row: { card_id: string; merchant_id: string; amount: number | null };
  readonly at: number;
  online?: { features: Record<string, unknown> };
}

const backends: [string, Pick<EmbeddedOptions, 'store' | 'log' | 'redisUrl' | 'redisPrefix'> | null][] = [
  ['LMDB + embedded log', { store: 'lmdb', log: 'embedded' }],
  ['Redis store + Redis Streams log', redis ? { store: 'redis', log: 'redis', redisUrl: redis.url } : null],
];

for (const [name, backend] of backends) {
  describe.skipIf(!backend)(`online/offline consistency on ${name}`, () => {
    it('serves exactly what the backfill computes, across a restart', async () => {
      const dir = tempDir('tessera-consistency-');
      dirs.push(dir);
      const events = randomEvents(name.length * 7919, 1500);
      const dataFile = joinPath(dir, 'tx.jsonl');
      writeFileSync(dataFile, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
      const repo = makeRepo(dataFile);
      const r = rng(99);
      const cards = [...new Set(events.map((e) => e.card_id as string)), 'c_unknown'];
      const merchants = [...new Set(events.map((e) => e.merchant_id as string)), 'm_unknown'];

      const options: EmbeddedOptions = {
        repo,
        dataDir: joinPath(dir, 'online'),
        port: 0,
        ...backend!,
        redisPrefix: `cons${Date.now()}:`,
        batchSize: 97, // many small commits, so a restart lands between batches of one chunk's events
      };
      // Batch upload: the history before the cutoff goes straight from the source file into tiles.
      const cutoff = events[Math.floor(events.length * 0.4)]!.ts as number;
      const upload = openStore(
        options.store === 'redis'
          ? { kind: 'redis', url: options.redisUrl!, prefix: options.redisPrefix! }
          : { kind: 'lmdb', path: joinPath(options.dataDir!, 'store') },
      );
      for (const g of repo.groupBys) {
        const res = await uploadGroupBy({ groupBy: g, until: cutoff, store: upload });
        expect(res.events).toBeGreaterThan(0);
      }
      await upload.close();

      let server: EmbeddedServer = await startEmbedded(options);
      const queries: Query[] = [];
      const pick = () => ({
        card_id: cards[Math.floor(r() * cards.length)]!,
        merchant_id: merchants[Math.floor(r() * merchants.length)]!,
        amount: r() < 0.2 ? null : Math.round(r() * 10000) / 100,
      });
      // Right after the upload, before any streaming: at = cutoff (events at exactly the cutoff come later).
      for (let k = 0; k < 12; k++) {
        const row = pick();
        const online = (
          await createClient({ url: server.url }).features(repo.model, [row], { at: cutoff })
        )[0]!;
        queries.push({ row, at: cutoff, online });
      }
      // Then the rest streams in time order (events with ts >= cutoff), in chunks, with a restart.
      const streamed = events.filter((e) => (e.ts as number) >= cutoff);
      const chunks = 10;
      const per = Math.ceil(streamed.length / chunks);
      for (let c = 0; c < chunks; c++) {
        const chunk = streamed.slice(c * per, (c + 1) * per);
        const client = createClient({ url: server.url });
        for (let i = 0; i < chunk.length; i += 250) await client.ingest('tx', chunk.slice(i, i + 250));
        if (c === Math.floor(chunks / 2)) {
          // Restart mid-stream: a new process view of the same store and log resumes from committed offsets.
          await server.close();
          server = await startEmbedded(options);
        }
        await server.drain();
        const newest = chunk.at(-1)!.ts as number;
        const next = (streamed[(c + 1) * per]?.ts as number | undefined) ?? newest + DAY;
        // Query times from the newest ingested event up to (and exactly at) the next one, incl. hop edges.
        const times = new Set([
          newest,
          newest + 1,
          next,
          Math.floor(next / HOUR) * HOUR,
          Math.floor(next / MIN) * MIN,
        ]);
        for (let k = 0; k < 3; k++) times.add(newest + Math.floor(r() * (next - newest + 1)));
        const batch: Query[] = [];
        for (const at of times) {
          if (at < newest || at > next) continue;
          for (let k = 0; k < 6; k++) batch.push({ row: pick(), at });
        }
        const live = createClient({ url: server.url });
        for (const q of batch) {
          q.online = (await live.features(repo.model, [q.row], { at: q.at }))[0]!;
        }
        queries.push(...batch);
      }
      await server.close();

      // Offline: the same rows as a left file with ts = at.
      const leftFile = joinPath(dir, 'left.jsonl');
      writeFileSync(leftFile, queries.map((q) => JSON.stringify({ ...q.row, ts: q.at })).join('\n') + '\n');
      const out = joinPath(dir, 'out.parquet');
      await runBackfill({ join: repo.model, left: leftFile, out, progress: false });
      const offline = await readOutput(out);
      expect(offline).toHaveLength(queries.length);

      const names = featureNames(repo.model);
      const mismatches: string[] = [];
      queries.forEach((q, i) => {
        for (const f of names) {
          let want = offline[i]![f];
          if (f.includes('histogram') && typeof want === 'string') want = JSON.parse(want);
          const got = q.online!.features[f];
          if (!same(got, want)) {
            mismatches.push(
              `${f} for ${JSON.stringify(q.row)} at ${q.at}: online ${JSON.stringify(got)} vs offline ${JSON.stringify(want)}`,
            );
          }
        }
      });
      expect(mismatches.slice(0, 10)).toEqual([]);
      expect(queries.length).toBeGreaterThan(200);
      // Uploaded history is served before any event streamed.
      expect(queries.slice(0, 12).some((q) => (q.online!.features.card_count_lifetime as number) > 0)).toBe(
        true,
      );
      // The comparison is not vacuous: plenty of non-empty windows were compared.
      expect(queries.filter((q) => (q.online!.features.card_count_1d as number) > 0).length).toBeGreaterThan(
        50,
      );
    });
  });
}
