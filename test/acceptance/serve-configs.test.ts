/**
 * Acceptance: other `tessera serve` set-ups, fed in time order with a `kill -9` in the middle, must give the
 * oracle's values at "now" like the default: `--store redis --log redis` (a stateless serving node in front
 * of Redis) and the embedded log with `--partitions 2` (events re-keyed, one worker per partition).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis } from '../support/servers.ts';
import { oWindow, type OEvent } from './oracle.ts';
import { checkOnline } from './online-check.ts';
import {
  FULL_AGGS,
  KEYS,
  LEFT_SCHEMA,
  SOURCE_SCHEMA,
  DAY,
  T0,
  aggCode,
  featureName,
  makeScenario,
  writeDefs,
} from './scenario.ts';
import { ServeProcess } from './serve-process.ts';
import { tempDir, writeJsonl, removeTempDirs } from './support.ts';

const WINDOW_SPECS = ['30s', '1h', '1d', 'lifetime', { size: '3d', hop: '6h' }];
const WINDOWS = WINDOW_SPECS.map(oWindow);
const FEATURES = FULL_AGGS.flatMap((agg) =>
  WINDOWS.map((w) => ({ agg, w, name: featureName(undefined, 'act', agg, w) })),
);
const events: OEvent[] = makeScenario(31337, 500, 0)
  .events.slice()
  .sort((a, b) => a.ts - b.ts || a.seq - b.seq)
  .map((e, seq) => ({ ...e, seq }));

const redis = await startRedis();
let repo = '';
let dir = '';

beforeAll(() => {
  dir = tempDir();
  repo = join(dir, 'repo');
  mkdirSync(join(repo, 'data'), { recursive: true });
  writeJsonl(
    join(repo, 'data/events.jsonl'),
    events.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
  );
  writeJsonl(join(repo, 'data/left.jsonl'), [{ row_id: 1, uid: 'u0', ts: T0, label: null }]);
  writeDefs(
    repo,
    'defs.ts',
    `
export const ev = eventSource({ name: 'ev', path: 'data/events.jsonl', timeColumn: 'ts', schema: ${SOURCE_SCHEMA} });
export const q = eventSource({ name: 'q', path: 'data/left.jsonl', timeColumn: 'ts', schema: ${LEFT_SCHEMA} });
export const act = groupBy({ name: 'act', source: ev, keys: ['user'], aggregations: [
    ${aggCode(FULL_AGGS, WINDOW_SPECS)}
] });
export const model = join({ name: 'model', left: q, parts: [{ groupBy: act, keys: { user: 'uid' } }] });
`,
  );
});

afterAll(async () => {
  await redis?.stop();
  removeTempDirs();
});

async function feedWithKill(srv: ServeProcess): Promise<string[]> {
  const keys = [...KEYS, 'ghost'];
  const times = events.filter((_, i) => i % 45 === 44).map((e) => e.ts);
  times.push(events.at(-1)!.ts + 1);
  const problems: string[] = [];
  let sent = 0;
  for (const [step, t] of times.entries()) {
    const chunk = events.filter((e) => e.ts <= t).slice(sent);
    const res = await srv.post(
      '/v1/events/ev',
      chunk.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
    );
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    sent += chunk.length;
    if (step === Math.floor(times.length / 2)) {
      await srv.stop('SIGKILL');
      await srv.start();
    }
    await srv.waitApplied('ev', 'act', sent);
    problems.push(...(await checkOnline(srv, 'model', keys, FEATURES, events, t)).problems);
  }
  return problems;
}

describe.skipIf(!redis)('tessera serve on Redis (store and log)', () => {
  it('fed in time order with a kill -9 midway, fetches at "now" equal the oracle', async () => {
    const srv = new ServeProcess([
      '--repo',
      repo,
      '--data-dir',
      join(dir, 'state-redis'),
      '--store',
      'redis',
      '--log',
      'redis',
      '--redis',
      redis!.url,
    ]);
    await srv.start();
    try {
      expect(await feedWithKill(srv)).toEqual([]);
    } finally {
      await srv.stop('SIGTERM');
    }
  });
});

describe('tessera serve --partitions 2 (embedded)', () => {
  it('fed in time order with a kill -9 midway, fetches at "now" equal the oracle', async () => {
    const srv = new ServeProcess(['--repo', repo, '--data-dir', join(dir, 'state-p2'), '--partitions', '2']);
    await srv.start();
    try {
      expect(await feedWithKill(srv)).toEqual([]);
    } finally {
      await srv.stop('SIGTERM');
    }
  });
});

describe('tessera serve fed out of order (late events within retention)', () => {
  it('a shuffled corpus gives the oracle values at every later "now"', async () => {
    const srv = new ServeProcess(['--repo', repo, '--data-dir', join(dir, 'state-shuffled')]);
    await srv.start();
    try {
      // Online ties break by ingest order, so the oracle's source order is the shuffled order.
      const shuffled = [...events];
      let a = 12345;
      for (let i = shuffled.length - 1; i > 0; i--) {
        a = (a * 1103515245 + 12345) % 2147483648;
        const j = a % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const ingested = shuffled.map((e, seq) => ({ ...e, seq }));
      for (let i = 0; i < ingested.length; i += 100) {
        const chunk = ingested.slice(i, i + 100).map((e) => ({ user: e.key, ...e.values, ts: e.ts }));
        expect((await srv.post('/v1/events/ev', { events: chunk })).status).toBe(200);
      }
      await srv.waitApplied('ev', 'act', ingested.length);
      const last = Math.max(...events.map((e) => e.ts));
      const problems: string[] = [];
      for (const d of [1, 30_000, 600_000, 3_600_000, 7_200_000, 86_400_000, 3 * 86_400_000 + 1]) {
        problems.push(
          ...(await checkOnline(srv, 'model', [...KEYS, 'ghost'], FEATURES, ingested, last + d)).problems,
        );
      }
      expect(problems).toEqual([]);
    } finally {
      await srv.stop('SIGTERM');
    }
  });
});

describe('kill -9 during concurrent ingest', () => {
  it('every acknowledged batch is applied exactly once; an unacknowledged one wholly or not at all', async () => {
    const srv = new ServeProcess(['--repo', repo, '--data-dir', join(dir, 'state-concurrent')]);
    await srv.start();
    const SIZE = 300;
    const acked = new Set<string>();
    const unknown = new Set<string>();
    let batchNo = 0;
    const problems: string[] = [];
    try {
      for (const killAfter of [90, 260]) {
        let stop = false;
        const killer = new Promise<void>((done) =>
          setTimeout(async () => {
            stop = true;
            await srv.stop('SIGKILL');
            done();
          }, killAfter),
        );
        // Each batch is one fresh entity, so its count shows whether the batch landed whole, partly or not.
        const senders = Array.from({ length: 4 }, async () => {
          while (!stop) {
            const user = `b${batchNo++}`;
            unknown.add(user);
            const batch = Array.from({ length: SIZE }, (_, i) => ({ user, n: 1, x: 1, s: 'a', ts: T0 + i }));
            try {
              if ((await srv.post('/v1/events/ev', batch)).status === 200) {
                acked.add(user);
                unknown.delete(user);
              }
            } catch {
              return; // connection cut by the kill: outcome unknown
            }
          }
        });
        await Promise.all([killer, ...senders]);
        await srv.start();
        const deadline = Date.now() + 20_000;
        while ((await srv.metric('tessera_source_lag_events', 'source="ev"')) !== 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        const users = [...acked, ...unknown];
        for (let i = 0; i < users.length; i += 500) {
          const slice = users.slice(i, i + 500);
          const res = await srv.post('/v1/features/model', {
            rows: slice.map((uid) => ({ uid })),
            at: T0 + DAY,
          });
          slice.forEach((u, j) => {
            const c = res.json.rows[j].features.act_count_lifetime;
            if (acked.has(u) && c !== SIZE) problems.push(`acknowledged batch ${u}: ${c} of ${SIZE} events`);
            if (unknown.has(u) && c !== 0 && c !== SIZE)
              problems.push(`in-flight batch ${u}: partly applied (${c})`);
            if (unknown.has(u) && c === SIZE) acked.add(u);
          });
        }
        unknown.clear();
      }
      expect(acked.size).toBeGreaterThan(0);
      expect(problems).toEqual([]);
    } finally {
      await srv.stop('SIGTERM');
    }
  });
});
