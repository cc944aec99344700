/**
 * Acceptance: a source with derived columns and a row filter, served online. The worker must derive and
 * filter exactly as the backfill does: fetches at "now" equal the oracle and `tessera backfill` at the
 * same times, and filtered-out events are not counted.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inWindow, oWindow, type OEvent } from './oracle.ts';
import { oracleAccepts, type CheckedFeature } from './online-check.ts';
import { DAY, T0, writeDefs } from './scenario.ts';
import { ServeProcess } from './serve-process.ts';
import { close, readOutput, removeTempDirs, rng, runCli, tempDir, writeJsonl } from './support.ts';

const r = rng(2024);
const raw = Array.from({ length: 400 }, () => ({
  card: ['c1', 'c2', 'c3'][Math.floor(r() * 3)]!,
  amt: Math.round((r() * 300 - 40) * 100) / 100,
  ts: T0 + Math.floor(r() * 4 * DAY),
})).sort((a, b) => a.ts - b.ts);
/** After the filter (amt >= 0), with big = amt > 100 ? amt : null and cents = round(amt * 100). */
const events: OEvent[] = raw
  .map((e, seq) => ({ e, seq }))
  .filter(({ e }) => e.amt >= 0)
  .map(({ e, seq }) => ({
    key: e.card,
    ts: e.ts,
    seq,
    values: { amt: e.amt, big: e.amt > 100 ? e.amt : null, cents: Math.round(e.amt * 100) },
  }));
const FEATURES: CheckedFeature[] = [
  { name: 'cd_count_1h', agg: { op: 'count', input: null }, w: oWindow('1h') },
  { name: 'cd_count_lifetime', agg: { op: 'count', input: null }, w: oWindow('lifetime') },
  { name: 'cd_big_max_1d', agg: { op: 'max', input: 'big' }, w: oWindow('1d') },
  { name: 'cd_big_count_lifetime', agg: { op: 'count', input: 'big' }, w: oWindow('lifetime') },
  { name: 'cd_cents_sum_1d', agg: { op: 'sum', input: 'cents' }, w: oWindow('1d') },
  { name: 'cd_big_last_lifetime', agg: { op: 'last', input: 'big' }, w: oWindow('lifetime') },
];

let repo = '';
let dir = '';
let srv: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  repo = join(dir, 'repo');
  mkdirSync(join(repo, 'data'), { recursive: true });
  writeJsonl(join(repo, 'data/charges.jsonl'), raw);
  writeDefs(
    repo,
    'defs.ts',
    `
export const charges = eventSource({ name: 'charges', path: 'data/charges.jsonl', timeColumn: 'ts',
  schema: { card: col.string(), amt: col.float(), ts: col.timestamp() },
  derive: {
    big: { type: col.float().nullable(), fn: (r) => (r.amt > 100 ? r.amt : null) },
    cents: { type: col.int(), fn: (r) => Math.round(r.amt * 100) },
  },
  filter: (r) => r.amt >= 0,
});
export const cd = groupBy({ name: 'cd', source: charges, keys: ['card'], aggregations: [
  count({ windows: ['1h', 'lifetime'] }),
  max('big', { windows: ['1d'] }),
  count('big', { windows: ['lifetime'] }),
  sum('cents', { windows: ['1d'] }),
  last('big', { windows: ['lifetime'] }),
] });
export const cm = join({ name: 'cm', left: charges, parts: [{ groupBy: cd, keys: { card: 'card' } }] });
`,
  );
  srv = new ServeProcess(['--repo', repo, '--data-dir', join(dir, 'state')]);
  await srv.start();
}, 60_000);

afterAll(async () => {
  await srv?.stop('SIGTERM');
  removeTempDirs();
});

describe('derived columns and filters online', () => {
  it('online at "now" equals the oracle and the backfill; filtered rows are not ingested into features', async () => {
    const keys = ['c1', 'c2', 'c3'];
    const times = raw.filter((_, i) => i % 50 === 49).map((e) => e.ts);
    const problems: string[] = [];
    const probes: Array<{ card: string; ts: number; features: Record<string, unknown> }> = [];
    let sent = 0;
    for (const t of times) {
      const chunk = raw.filter((e) => e.ts <= t).slice(sent);
      // The left source is the event source: rows carry amt too, as a user's would.
      const res = await srv.post('/v1/events/charges', chunk);
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      sent += chunk.length;
      await srv.waitApplied('charges', 'cd', events.filter((e) => e.ts <= t).length);
      const got = await srv.post('/v1/features/cm', { rows: keys.map((card) => ({ card, amt: 1 })), at: t });
      expect(got.status).toBe(200);
      keys.forEach((card, i) => {
        const features = got.json.rows[i].features;
        probes.push({ card, ts: t, features });
        for (const f of FEATURES) {
          const evs = inWindow(
            events.filter((e) => e.key === card),
            f.w,
            t,
          );
          if (!oracleAccepts(f.agg, features[f.name], evs) && problems.length < 8)
            problems.push(`${f.name} ${card} at ${t}: got ${JSON.stringify(features[f.name])}`);
        }
      });
    }
    expect(problems).toEqual([]);
    writeJsonl(
      join(dir, 'left.jsonl'),
      probes.map((p) => ({ card: p.card, amt: 1, ts: p.ts })),
    );
    const bf = await runCli([
      'backfill',
      '--repo',
      repo,
      '--join',
      'cm',
      '--left',
      join(dir, 'left.jsonl'),
      '--out',
      join(dir, 'out.parquet'),
    ]);
    expect(bf.code, bf.stderr).toBe(0);
    const offline = await readOutput(join(dir, 'out.parquet'));
    probes.forEach((p, i) => {
      for (const f of FEATURES) expect(close(p.features[f.name], offline[i]![f.name]), f.name).toBe(true);
    });
  });
});
