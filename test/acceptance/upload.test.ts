/**
 * Acceptance: batch upload then streaming (issue 3 §3). `tessera upload --until CUT` loads the history from
 * the source files into tiles, `tessera serve` on the same data dir continues with POSTed events from CUT on,
 * and fetches at "now" equal the oracle over all events. Events before CUT POSTed again are not counted twice.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inWindow, oWindow, type OEvent } from './oracle.ts';
import {
  DAY,
  FULL_AGGS,
  KEYS,
  LEFT_SCHEMA,
  SOURCE_SCHEMA,
  T0,
  aggCode,
  featureName,
  makeScenario,
  writeDefs,
  writeEventsParquet,
} from './scenario.ts';
import { checkOnline, oracleAccepts } from './online-check.ts';
import { ServeProcess } from './serve-process.ts';
import { runCli, tempDir, writeJsonl, type CliResult, removeTempDirs } from './support.ts';

const WINDOW_SPECS = ['10m', '1h', '1d', '7d', 'lifetime', { size: '2h', hop: '20m' }];
const WINDOWS = WINDOW_SPECS.map(oWindow);
const FEATURES = FULL_AGGS.flatMap((agg) =>
  WINDOWS.map((w) => ({ agg, w, name: featureName(undefined, 'act', agg, w) })),
);
const events: OEvent[] = makeScenario(555, 700, 0)
  .events.slice()
  .sort((a, b) => a.ts - b.ts || a.seq - b.seq)
  .map((e, seq) => ({ ...e, seq }));
/** Not hop-aligned, so tiles straddle the cutoff. */
const CUT = T0 + 5 * DAY + 7 * 3_600_000 + 123_457;

let upload: CliResult;
let srv: ServeProcess;

beforeAll(async () => {
  const dir = tempDir();
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, 'data'), { recursive: true });
  await writeEventsParquet(join(repo, 'data'), 'events.parquet', events);
  writeJsonl(join(repo, 'data/left.jsonl'), [{ row_id: 1, uid: 'u0', ts: T0, label: null }]);
  writeDefs(
    repo,
    'defs.ts',
    `
export const ev = eventSource({ name: 'ev', path: 'data/events.parquet', timeColumn: 'ts', schema: ${SOURCE_SCHEMA} });
export const q = eventSource({ name: 'q', path: 'data/left.jsonl', timeColumn: 'ts', schema: ${LEFT_SCHEMA} });
export const act = groupBy({ name: 'act', source: ev, keys: ['user'], aggregations: [
    ${aggCode(FULL_AGGS, WINDOW_SPECS)}
] });
export const model = join({ name: 'model', left: q, parts: [{ groupBy: act, keys: { user: 'uid' } }] });
`,
  );
  const dataDir = join(dir, 'state');
  upload = await runCli([
    'upload',
    '--repo',
    repo,
    '--data-dir',
    dataDir,
    '--groupby',
    'all',
    '--until',
    new Date(CUT).toISOString(),
  ]);
  if (upload.code !== 0) return;
  srv = new ServeProcess(['--repo', repo, '--data-dir', dataDir]);
  await srv.start();
}, 60_000);

afterAll(async () => {
  await srv?.stop('SIGTERM');
  removeTempDirs();
});

async function check(at: number): Promise<string[]> {
  return (await checkOnline(srv, 'model', [...KEYS, 'ghost'], FEATURES, events, at)).problems;
}

describe('upload --until, then streaming', () => {
  it('upload succeeds and says what it loaded', () => {
    expect(upload.code, upload.stderr).toBe(0);
    expect(upload.stdout + upload.stderr).toMatch(/act/);
  });

  it('right after upload, a fetch at the cutoff equals the oracle over the history', async () => {
    expect(await check(CUT)).toEqual([]);
  });

  it('a fetch before the cutoff is exact or flagged inexact, never wrong and ok', async () => {
    const problems: string[] = [];
    for (const at of [CUT - 20 * 60_000, CUT - 5 * 3_600_000]) {
      const res = await srv.post('/v1/features/model', { rows: [...KEYS].map((uid) => ({ uid })), at });
      expect(res.status).toBe(200);
      KEYS.forEach((uid, i) => {
        for (const f of FEATURES) {
          if (res.json.rows[i].status[f.name] === 'inexact') continue;
          const evs = inWindow(
            events.filter((e) => e.key === uid),
            f.w,
            at,
          );
          if (!oracleAccepts(f.agg, res.json.rows[i].features[f.name], evs) && problems.length < 8)
            problems.push(
              `${f.name} uid=${uid} at=${at}: got ${JSON.stringify(res.json.rows[i].features[f.name])}`,
            );
        }
      });
    }
    expect(problems).toEqual([]);
  });

  it('streamed events from the cutoff on (history re-sent too) give oracle values at "now"', async () => {
    // A user replaying everything: the history part must be skipped, not double counted.
    const replay = events.filter((e) => e.ts >= CUT - 2 * 3_600_000);
    const streamed = events.filter((e) => e.ts >= CUT);
    const times = [
      CUT + 1,
      ...streamed.filter((_, i) => i % 40 === 7).map((e) => e.ts),
      streamed.at(-1)!.ts + 1,
    ];
    const problems: string[] = [];
    let sent = 0;
    for (const t of times) {
      const chunk = replay.filter((e) => e.ts <= t).slice(sent);
      if (chunk.length > 0) {
        const res = await srv.post(
          '/v1/events/ev',
          chunk.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
        );
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        sent += chunk.length;
      }
      await srv.waitApplied('ev', 'act', replay.filter((e) => e.ts <= t && e.ts >= CUT).length);
      problems.push(...(await check(t)));
    }
    expect(problems).toEqual([]);
  });
});
