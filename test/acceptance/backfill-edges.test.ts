/**
 * Acceptance: less common shapes a user writes. Composite keys of string + int mapped from differently named
 * left columns, a nullable key (null = no entity), bool inputs, derived columns and a filter, an overridden
 * feature name, a '2w' window, a TIMESTAMPTZ Parquet time column, CSV times as epoch-ms digits, a left time
 * column not called `ts`, and a left row with no matching entity. One CLI run, checked against the oracle.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, floatScale, inWindow, oWindow, percentilesOk, type OAgg, type OEvent } from './oracle.ts';
import { DAY, T0, isoAt, writeDefs } from './scenario.ts';
import {
  close,
  duckRun,
  readOutput,
  rng,
  runCli,
  tempDir,
  writeCsv,
  writeJsonl,
  type CliResult,
  removeTempDirs,
} from './support.ts';

const r = rng(99);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
interface Charge {
  card: string;
  shop: number;
  ok: boolean | null;
  amt: number;
  ts: number;
}
const charges: Charge[] = Array.from({ length: 400 }, () => ({
  card: pick(['c1', 'c2', 'c3']),
  shop: pick([1, 2, 10]),
  ok: r() < 0.2 ? null : r() < 0.5,
  amt: Math.round((r() * 300 - 30) * 100) / 100,
  ts: T0 + Math.floor(r() * 20 * DAY),
}));
// Integral and short floats, so histogram keys show how float values are written as strings (JS: 12 → "12").
for (const [i, amt] of [12, 100, 7.5, 0, 12].entries()) charges[i * 7]!.amt = amt;
interface Visit {
  user: string | null;
  v: number;
  ts: number;
}
const BURST = T0 + 5 * DAY + 1234;
const visits: Visit[] = [
  ...Array.from({ length: 300 }, () => ({
    user: r() < 0.15 ? null : pick(['p', 'q', 'r']),
    v: Math.floor(r() * 10),
    ts: T0 + Math.floor(r() * 20 * DAY),
  })),
  // A dense burst for user p, so the short windows (90s .. 45m) hold events at their hop edges.
  ...Array.from({ length: 250 }, () => ({
    user: 'p',
    v: Math.floor(r() * 10),
    ts: BURST + Math.floor(r() * 3 * 3_600_000),
  })),
];
interface Left {
  id: number;
  c: string;
  s: number;
  u: string | null;
  when: number;
}
const burstLeft: Left[] = Array.from({ length: 80 }, (_, i) => {
  const e = pick(visits.slice(300));
  const w = pick([90_000, 60_000, 660_000, 720_000, 780_000, 2_700_000]);
  return {
    id: 1000 + i,
    c: 'c1',
    s: 1,
    u: 'p',
    when: pick([e.ts, e.ts + w, e.ts + w + 1, e.ts + w - 1, Math.ceil(e.ts / 60_000) * 60_000]),
  };
});
const left: Left[] = [
  ...Array.from({ length: 120 }, (_, i) => {
    const base = r() < 0.4 ? pick(charges).ts : r() < 0.7 ? pick(visits).ts : T0 + Math.floor(r() * 21 * DAY);
    return {
      id: i,
      c: pick(['c1', 'c2', 'c3', 'c9']),
      s: pick([1, 2, 10, 3]),
      u: r() < 0.1 ? null : pick(['p', 'q', 'r', 'zz']),
      when: base + pick([0, 0, 1, -1, 3_600_000]),
    };
  }),
  ...burstLeft,
];

/** Charge events after the source's filter (amt >= 0) with the derived column big = amt > 100 ? amt : null. */
const chargeEvents: OEvent[] = charges
  .map((c, seq) => ({ c, seq }))
  .filter(({ c }) => c.amt >= 0)
  .map(({ c, seq }) => ({
    key: `${c.card}|${c.shop}`,
    ts: c.ts,
    seq,
    values: {
      ok: c.ok === null ? null : (String(c.ok) as string),
      okb: c.ok as unknown as string,
      amt: c.amt,
      big: c.amt > 100 ? c.amt : null,
    },
  }));
const visitEvents: OEvent[] = visits
  .map((v, seq) => ({ key: v.user as string, ts: v.ts, seq, values: { v: v.v } }))
  .filter((e) => e.key !== null);

const ODD_WINDOWS = ['90s', '1m', '11m', '12m', '13m', '45m', '11h', '12h', '36h', '12d'];
interface Case extends OAgg {
  name: string;
  window: string;
  part: 'a' | 'b';
}
const CASES: Case[] = [
  { part: 'a', name: 'cs_count_1h', op: 'count', input: null, window: '1h' },
  { part: 'a', name: 'cs_ok_count_lifetime', op: 'count', input: 'ok', window: 'lifetime' },
  { part: 'a', name: 'cs_ok_histogram_1d', op: 'histogram', input: 'ok', window: '1d' },
  { part: 'a', name: 'cs_ok_last_lifetime', op: 'last', input: 'okb', window: 'lifetime' },
  { part: 'a', name: 'cs_amt_sum_2w', op: 'sum', input: 'amt', window: '2w' },
  { part: 'a', name: 'cs_big_max_lifetime', op: 'max', input: 'big', window: 'lifetime' },
  { part: 'b', name: 'vis_visits_total', op: 'count', input: null, window: 'lifetime' },
  { part: 'b', name: 'vis_visits_v_avg_7d', op: 'avg', input: 'v', window: '7d' },
  {
    part: 'b',
    name: 'vis_visits_v_approx_percentile_lifetime',
    op: 'approx_percentile',
    input: 'v',
    percentiles: [0.25, 0.75],
    window: 'lifetime',
  },
  { part: 'a', name: 'cs_amt_histogram_lifetime', op: 'histogram', input: 'amt', window: 'lifetime' },
  // Default hops at the edges of the W >= 12h rule.
  ...ODD_WINDOWS.map(
    (w): Case => ({ part: 'b', name: `vis_odd_count_${w}`, op: 'count', input: null, window: w }),
  ),
  ...ODD_WINDOWS.map(
    (w): Case => ({ part: 'b', name: `vis_odd_v_sum_${w}`, op: 'sum', input: 'v', window: w }),
  ),
];

let cli: CliResult;
let out: Record<string, unknown>[] = [];

beforeAll(async () => {
  const repo = join(tempDir(), 'repo');
  mkdirSync(join(repo, 'data'), { recursive: true });
  const tmp = join(repo, 'data/charges.src.jsonl');
  writeJsonl(tmp, charges);
  await duckRun(
    `SET TimeZone = 'America/New_York'`,
    `COPY (SELECT card, shop, ok, amt, make_timestamptz(ts * 1000) AS ts FROM read_json('${tmp}', format = 'newline_delimited',
       columns = {card: 'VARCHAR', shop: 'INTEGER', ok: 'BOOLEAN', amt: 'DOUBLE', ts: 'BIGINT'}))
     TO '${join(repo, 'data/charges.parquet')}' (FORMAT parquet)`,
  );
  writeCsv(join(repo, 'data/visits.csv'), ['user', 'v', 'ts'], visits);
  writeCsv(
    join(repo, 'data/left.csv'),
    ['id', 'c', 's', 'u', 'when'],
    left.map((l, i) => ({ ...l, when: isoAt(l.when, i % 2 ? 'Z' : 90) })),
  );
  writeDefs(
    repo,
    'defs.ts',
    `
export const chargesSrc = eventSource({ name: 'charges', path: 'data/charges.parquet', timeColumn: 'ts',
  schema: { card: col.string(), shop: col.int(), ok: col.bool().nullable(), amt: col.float(), ts: col.timestamp() },
  derive: { big: { type: col.float().nullable(), fn: (r) => (r.amt > 100 ? r.amt : null) } },
  filter: (r) => r.amt >= 0,
});
export const visitsSrc = eventSource({ name: 'visits', path: 'data/visits.csv', timeColumn: 'ts',
  schema: { user: col.string().nullable(), v: col.int(), ts: col.timestamp() } });
export const leftSrc = eventSource({ name: 'lefts', path: 'data/left.csv', timeColumn: 'when',
  schema: { id: col.int(), c: col.string(), s: col.int(), u: col.string().nullable(), when: col.timestamp() } });
export const cs = groupBy({ name: 'cs', source: chargesSrc, keys: ['card', 'shop'], aggregations: [
  count({ windows: ['1h'] }),
  count('ok', { windows: ['lifetime'] }),
  histogram('ok', { windows: ['1d'] }),
  last('ok', { windows: ['lifetime'] }),
  sum('amt', { windows: ['2w'] }),
  max('big', { windows: ['lifetime'] }),
  histogram('amt', { windows: ['lifetime'] }),
] });
export const vs = groupBy({ name: 'visits', source: visitsSrc, keys: ['user'], aggregations: [
  count({ windows: ['lifetime'], names: ['visits_total'] }),
  avg('v', { windows: ['7d'] }),
  approxPercentile('v', { percentiles: [0.25, 0.75], windows: ['lifetime'] }),
] });
export const odd = groupBy({ name: 'odd', source: visitsSrc, keys: ['user'], aggregations: [
  count({ windows: ${JSON.stringify(ODD_WINDOWS)} }),
  sum('v', { windows: ${JSON.stringify(ODD_WINDOWS)} }),
] });
export const edge = join({ name: 'edge', left: leftSrc, parts: [
  { groupBy: odd, keys: { user: 'u' }, prefix: 'vis' },
  { groupBy: cs, keys: { card: 'c', shop: 's' } },
  { groupBy: vs, keys: { user: 'u' }, prefix: 'vis' },
] });
`,
  );
  cli = await runCli([
    'backfill',
    '--repo',
    repo,
    '--join',
    'edge',
    '--left',
    join(repo, 'data/left.csv'),
    '--out',
    join(repo, 'out.parquet'),
  ]);
  if (cli.code === 0) out = await readOutput(join(repo, 'out.parquet'));
}, 60_000);

afterAll(() => removeTempDirs());

describe('backfill edge shapes vs the oracle', () => {
  it('runs', () => expect(cli.code, cli.stderr).toBe(0));

  it('an overridden name is used, with the part prefix in front', () => {
    expect(Object.keys(out[0] ?? {})).toEqual(
      expect.arrayContaining(['vis_visits_total', 'vis_visits_v_avg_7d']),
    );
  });

  for (const c of CASES) {
    it(`${c.name}`, () => {
      const problems: string[] = [];
      left.forEach((l, i) => {
        const key = c.part === 'a' ? `${l.c}|${l.s}` : l.u;
        const src = c.part === 'a' ? chargeEvents : visitEvents;
        const evs = inWindow(
          src.filter((e) => key !== null && e.key === key),
          oWindow(c.window),
          l.when,
        );
        let want = evaluate(c, evs);
        let got = out[i]?.[c.name];
        if (c.op === 'histogram') got = JSON.parse(String(got));
        if (c.input === 'okb' && want !== null)
          want = want === ('true' as unknown) || want === (true as unknown);
        const ok =
          c.op === 'approx_percentile'
            ? percentilesOk(got, want as number[] | null, c.percentiles!)
            : close(got, want, floatScale(c, evs));
        if (!ok && problems.length < 6)
          problems.push(
            `row ${i} key=${key} t=${l.when}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`,
          );
      });
      expect(problems).toEqual([]);
    });
  }
});
