/**
 * Acceptance: `tessera backfill` on a user's own feature repo and data, against an independent oracle
 * written from DESIGN.md §1 alone. Every op, windows 30s..7d, lifetime and overridden hops, queries exactly
 * at event times, at hop boundaries and at the sawtooth edge, ties, nulls, keys with no events, and the
 * same events as Parquet TIMESTAMPs, CSV ISO text at several UTC offsets and JSONL epoch-ms integers.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approxCountOk,
  evaluate,
  floatScale,
  inWindow,
  oWindow,
  percentilesOk,
  type OEvent,
  type OWindow,
} from './oracle.ts';
import {
  ALL_WINDOWS,
  FULL_AGGS,
  LEFT_SCHEMA,
  SMALL_AGGS,
  SOURCE_SCHEMA,
  aggCode,
  featureName,
  makeScenario,
  writeDefs,
  writeEventsCsv,
  writeEventsJsonl,
  writeEventsParquet,
  writeLeftParquet,
  type AggCase,
  type LeftRow,
} from './scenario.ts';
import {
  close,
  parquetSchema,
  readOutput,
  runCli,
  tempDir,
  type CliResult,
  removeTempDirs,
} from './support.ts';

const WINDOWS = ALL_WINDOWS.map(oWindow);
const scenario = makeScenario(20261127, 1200, 320);
let dir = '';
let out: Record<string, unknown>[] = [];
let cli: CliResult;

function byKey(events: readonly OEvent[]): Map<string, OEvent[]> {
  const m = new Map<string, OEvent[]>();
  for (const e of events) m.set(e.key, [...(m.get(e.key) ?? []), e]);
  return m;
}
const eventsByKey = byKey(scenario.events);

beforeAll(async () => {
  dir = tempDir();
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, 'data'), { recursive: true });
  await writeEventsParquet(join(repo, 'data'), 'events.parquet', scenario.events);
  writeEventsCsv(join(repo, 'data', 'events.csv'), scenario.events);
  writeEventsJsonl(join(repo, 'data', 'events.jsonl'), scenario.events);
  await writeLeftParquet(join(repo, 'data'), 'left.parquet', scenario.left);
  const src = (name: string, file: string) =>
    `export const ${name} = eventSource({ name: '${name}', path: 'data/${file}', timeColumn: 'ts', schema: ${SOURCE_SCHEMA} });\n`;
  writeDefs(
    repo,
    'sources.ts',
    src('ev_pq', 'events.parquet') +
      src('ev_csv', 'events.csv') +
      src('ev_js', 'events.jsonl') +
      `export const queries = eventSource({ name: 'queries', path: 'data/left.parquet', timeColumn: 'ts', schema: ${LEFT_SCHEMA} });\n`,
  );
  writeDefs(
    repo,
    'model.ts',
    `import { ev_pq, ev_csv, ev_js, queries } from './sources.ts';
export const act = groupBy({ name: 'act', source: ev_pq, keys: ['user'], aggregations: [
    ${aggCode(FULL_AGGS, ALL_WINDOWS)}
  ] });
export const actc = groupBy({ name: 'actc', source: ev_csv, keys: ['user'], aggregations: [
    ${aggCode(SMALL_AGGS, ALL_WINDOWS)}
  ] });
export const actj = groupBy({ name: 'actj', source: ev_js, keys: ['user'], aggregations: [
    ${aggCode(SMALL_AGGS, ALL_WINDOWS)}
  ] });
export const model = join({ name: 'model', left: queries, parts: [
  { groupBy: act, keys: { user: 'uid' } },
  { groupBy: actc, keys: { user: 'uid' }, prefix: 'c' },
  { groupBy: actj, keys: { user: 'uid' }, prefix: 'j' },
] });
`,
  );
  const outFile = join(dir, 'out.parquet');
  cli = await runCli([
    'backfill',
    '--repo',
    repo,
    '--join',
    'model',
    '--left',
    join(repo, 'data', 'left.parquet'),
    '--out',
    outFile,
  ]);
  if (cli.code !== 0) throw new Error(`backfill failed (${cli.code}):\n${cli.stderr}\n${cli.stdout}`);
  out = await readOutput(outFile);
}, 60_000);

const windowCache = new Map<string, OEvent[]>();
function windowEvents(i: number, row: LeftRow, w: OWindow): OEvent[] {
  const id = `${i}/${w.label}`;
  let events = windowCache.get(id);
  if (!events) {
    events = inWindow(row.uid === null ? [] : (eventsByKey.get(row.uid) ?? []), w, row.ts);
    windowCache.set(id, events);
  }
  return events;
}

function check(agg: AggCase, prefix: string | undefined, gb: string): string[] {
  const problems: string[] = [];
  for (const w of WINDOWS) {
    const name = featureName(prefix, gb, agg, w);
    scenario.left.forEach((row: LeftRow, i) => {
      const got = (out[i] as Record<string, unknown>)[name];
      const events = windowEvents(i, row, w);
      const want = evaluate(agg, events);
      let ok: boolean;
      if (agg.op === 'approx_unique_count') ok = approxCountOk(got, want as number | null);
      else if (agg.op === 'approx_percentile')
        ok = percentilesOk(got, want as number[] | null, agg.percentiles!);
      else if (agg.op === 'histogram') ok = close(typeof got === 'string' ? JSON.parse(got) : got, want);
      else ok = close(got, want, floatScale(agg, events));
      if (!ok && problems.length < 8) {
        problems.push(
          `${name} row ${i} (uid=${row.uid} t=${new Date(row.ts).toISOString()}, ${events.length} events): ` +
            `got ${JSON.stringify(got)} want ${JSON.stringify(want).slice(0, 200)}`,
        );
      }
    });
  }
  return problems;
}

afterAll(() => removeTempDirs());

describe('backfill vs DESIGN §1 oracle (Parquet TIMESTAMP source)', () => {
  it('prints a summary naming rows and features', () => {
    const features = (FULL_AGGS.length + 2 * SMALL_AGGS.length) * WINDOWS.length;
    expect(cli.stdout).toMatch(new RegExp(`${scenario.left.length} rows`));
    expect(cli.stdout).toMatch(new RegExp(`${features} features`));
  });

  it('keeps every left row, in order, with all left columns first', async () => {
    expect(out.length).toBe(scenario.left.length);
    expect(out.map((r) => r.row_id)).toEqual(scenario.left.map((r) => r.row_id));
    expect(out.map((r) => r.uid)).toEqual(scenario.left.map((r) => r.uid));
    expect(out.map((r) => r.label)).toEqual(scenario.left.map((r) => r.label));
    const cols = (await parquetSchema(join(dir, 'out.parquet'))).map((c) => c.name);
    expect(cols.slice(0, 4)).toEqual(['row_id', 'uid', 'ts', 'label']);
  });

  it('names features {prefix_}{groupBy}_{input}_{op}_{window}, and no others', async () => {
    const cols = (await parquetSchema(join(dir, 'out.parquet'))).map((c) => c.name).slice(4);
    const want = [
      ...FULL_AGGS.flatMap((a) => WINDOWS.map((w) => featureName(undefined, 'act', a, w))),
      ...SMALL_AGGS.flatMap((a) => WINDOWS.map((w) => featureName('c', 'actc', a, w))),
      ...SMALL_AGGS.flatMap((a) => WINDOWS.map((w) => featureName('j', 'actj', a, w))),
    ];
    expect([...cols].sort()).toEqual([...want].sort());
  });

  for (const agg of FULL_AGGS) {
    const label = `${agg.op}(${agg.input ?? ''}${agg.k ? `, k=${agg.k}` : ''})`;
    it(`${label} matches the oracle in every window`, () => {
      expect(check(agg, undefined, 'act')).toEqual([]);
    });
  }

  it('integer results are integers (count, sum/min/first of int, unique_count, approx_unique_count)', async () => {
    const types = new Map((await parquetSchema(join(dir, 'out.parquet'))).map((c) => [c.name, c.type]));
    expect(types.get('act_count_1h')).toBe('BIGINT');
    expect(types.get('act_n_sum_1d')).toBe('BIGINT');
    expect(types.get('act_n_min_1d')).toBe('BIGINT');
    expect(types.get('act_n_first_1d')).toBe('BIGINT');
    expect(types.get('act_s_unique_count_1d')).toBe('BIGINT');
    expect(types.get('act_s_approx_unique_count_1d')).toBe('BIGINT');
    expect(types.get('act_x_sum_1d')).toBe('DOUBLE');
  });
});

describe('the same events from CSV (ISO text, offsets) and JSONL (epoch ms) give the same answers', () => {
  for (const agg of SMALL_AGGS) {
    it(`CSV: ${agg.op}(${agg.input ?? ''})`, () => expect(check(agg, 'c', 'actc')).toEqual([]));
    it(`JSONL: ${agg.op}(${agg.input ?? ''})`, () => expect(check(agg, 'j', 'actj')).toEqual([]));
  }
});
