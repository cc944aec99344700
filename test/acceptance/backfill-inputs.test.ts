/**
 * Acceptance: backfill inputs and outputs as a user meets them. CSV left rows with ISO text, JSONL left rows
 * with epoch ms, CSV output, `--partition i/N` unioning to the whole, and bad input (unparseable times,
 * wrong types, missing columns, missing or empty files): an error naming file, row and column, no partial
 * output, and `--on-bad-row skip` counting what it skipped.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, floatScale, inWindow, oWindow, percentilesOk, type OAgg, type OEvent } from './oracle.ts';
import {
  LEFT_SCHEMA,
  SOURCE_SCHEMA,
  isoAt,
  makeScenario,
  writeDefs,
  writeEventsCsv,
  type LeftRow,
} from './scenario.ts';
import {
  close,
  readOutput,
  runCli,
  tempDir,
  writeCsv,
  writeJsonl,
  type CliResult,
  removeTempDirs,
} from './support.ts';

const scenario = makeScenario(777, 300, 90);
const AGGS: Array<OAgg & { name: string; window: string }> = [
  { name: 'g_count_1h', op: 'count', input: null, window: '1h' },
  { name: 'g_count_lifetime', op: 'count', input: null, window: 'lifetime' },
  { name: 'g_n_sum_1d', op: 'sum', input: 'n', window: '1d' },
  { name: 'g_x_avg_1h', op: 'avg', input: 'x', window: '1h' },
  { name: 'g_s_last_k_lifetime', op: 'last_k', input: 's', k: 2, window: 'lifetime' },
  { name: 'g_s_histogram_1d', op: 'histogram', input: 's', window: '1d' },
  {
    name: 'g_x_approx_percentile_lifetime',
    op: 'approx_percentile',
    input: 'x',
    percentiles: [0.5],
    window: 'lifetime',
  },
];
const DEFS = `
export const ev = eventSource({ name: 'ev', path: 'data/events.csv', timeColumn: 'ts', schema: ${SOURCE_SCHEMA} });
export const q = eventSource({ name: 'q', path: 'data/left.csv', timeColumn: 'ts', schema: ${LEFT_SCHEMA} });
export const g = groupBy({ name: 'g', source: ev, keys: ['user'], aggregations: [
  count({ windows: ['1h', 'lifetime'] }),
  sum('n', { windows: ['1d'] }),
  avg('x', { windows: ['1h'] }),
  lastK('s', { k: 2, windows: ['lifetime'] }),
  histogram('s', { windows: ['1d'] }),
  approxPercentile('x', { percentiles: [0.5], windows: ['lifetime'] }),
] });
export const m = join({ name: 'm', left: q, parts: [{ groupBy: g, keys: { user: 'uid' } }] });
`;

const LEFT_OFFSETS = ['Z', 60, -300, 'none'] as const;
function leftCsvRows(left: readonly LeftRow[]) {
  return left.map((r, i) => ({ ...r, ts: isoAt(r.ts, LEFT_OFFSETS[i % LEFT_OFFSETS.length]!) }));
}

/** A repo folder with the given events CSV text and left rows (CSV, ISO text). */
function makeRepo(root: string, name: string, eventsCsv?: string): string {
  const repo = join(root, name);
  mkdirSync(join(repo, 'data'), { recursive: true });
  writeDefs(repo, 'defs.ts', DEFS);
  if (eventsCsv === undefined) writeEventsCsv(join(repo, 'data/events.csv'), scenario.events);
  else writeFileSync(join(repo, 'data/events.csv'), eventsCsv);
  writeCsv(join(repo, 'data/left.csv'), ['row_id', 'uid', 'ts', 'label'], leftCsvRows(scenario.left));
  return repo;
}

function expected(events: readonly OEvent[], row: LeftRow, agg: OAgg & { window: string }) {
  const w = oWindow(agg.window);
  const evs = inWindow(
    events.filter((e) => e.key === row.uid),
    w,
    row.ts,
  );
  return { want: evaluate(agg, evs), scale: floatScale(agg, evs) };
}

/** Compares output rows with the oracle; CSV cells are text (lists and maps as JSON, null as empty). */
function mismatches(
  out: Record<string, unknown>[],
  left: readonly LeftRow[],
  events: readonly OEvent[],
  csv: boolean,
) {
  const problems: string[] = [];
  left.forEach((row, i) => {
    for (const agg of AGGS) {
      let got = out[i]?.[agg.name];
      if (csv)
        got =
          got === null || got === ''
            ? null
            : agg.op === 'last_k' || agg.op === 'histogram' || agg.op === 'approx_percentile'
              ? JSON.parse(String(got))
              : Number(got);
      if (!csv && agg.op === 'histogram') got = JSON.parse(String(got));
      const { want, scale } = expected(events, row, agg);
      const ok =
        agg.op === 'approx_percentile'
          ? percentilesOk(got, want as number[] | null, agg.percentiles!)
          : close(got, want, scale);
      if (!ok && problems.length < 6)
        problems.push(`${agg.name} row ${i}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
    }
  });
  return problems;
}

/** Whatever row numbering the message uses, it must point at this 1-based data row (or its line). */
function namesRow(message: string, dataRow: number): boolean {
  const nums = [...message.matchAll(/(?:row|line)\s*#?(\d+)/gi)].map((m) => Number(m[1]));
  return nums.some((n) => n === dataRow || n === dataRow + 1);
}

function leftovers(dir: string, base: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(base) || f.includes('.tmp') || f.includes('tessera'));
}

let root = '';
let good = '';
const runs: Record<string, CliResult> = {};
const BAD_TIME_ROW = 7;
const BAD_TYPE_ROW = 11;

function eventsCsvWith(mutate: (lines: string[]) => void): string {
  const dir = tempDir();
  writeEventsCsv(join(dir, 'e.csv'), scenario.events);
  const lines = readFileSync(join(dir, 'e.csv'), 'utf8').trimEnd().split('\n') as string[];
  mutate(lines);
  return lines.join('\n') + '\n';
}

beforeAll(async () => {
  root = tempDir();
  good = makeRepo(root, 'good');
  writeJsonl(join(good, 'data/left.jsonl'), scenario.left);
  // Bad time: data row BAD_TIME_ROW (line BAD_TIME_ROW+1) gets an unparseable timestamp.
  const badTime = makeRepo(
    root,
    'bad-time',
    eventsCsvWith((l) => (l[BAD_TIME_ROW] = l[BAD_TIME_ROW]!.replace(/,[^,]*$/, ',31/02/2026 25:99'))),
  );
  // Wrong type: an int column holds text.
  const badType = makeRepo(
    root,
    'bad-type',
    eventsCsvWith((l) => (l[BAD_TYPE_ROW] = l[BAD_TYPE_ROW]!.replace(/^([^,]*),[^,]*,/, '$1,abc,'))),
  );
  const badBoth = makeRepo(
    root,
    'bad-both',
    eventsCsvWith((l) => {
      l[BAD_TIME_ROW] = l[BAD_TIME_ROW]!.replace(/,[^,]*$/, ',31/02/2026 25:99');
      l[BAD_TYPE_ROW] = l[BAD_TYPE_ROW]!.replace(/^([^,]*),[^,]*,/, '$1,abc,');
    }),
  );
  // Missing column: no 'x' in the header or rows.
  const noX = makeRepo(
    root,
    'no-x',
    eventsCsvWith((l) => {
      for (let i = 0; i < l.length; i++) {
        const cells = l[i]!.match(/("[^"]*"|[^,]*)(,|$)/g)!.map((c) => c.replace(/,$/, ''));
        cells.splice(2, 1);
        l[i] = cells.slice(0, 4).join(',');
      }
    }),
  );
  const emptyEvents = makeRepo(root, 'empty-events', '');
  const out = (n: string) => join(root, 'out', n);
  mkdirSync(join(root, 'out'));
  const bf = (repo: string, left: string, o: string, ...extra: string[]) =>
    runCli(['backfill', '--repo', repo, '--join', 'm', '--left', left, '--out', o, ...extra]);
  const jobs: Record<string, () => Promise<CliResult>> = {
    csvOut: () => bf(good, join(good, 'data/left.csv'), out('good.csv')),
    p0: () => bf(good, join(good, 'data/left.jsonl'), out('p0.parquet'), '--partition', '0/2'),
    p1: () => bf(good, join(good, 'data/left.jsonl'), out('p1.parquet'), '--partition', '1/2'),
    badTime: () => bf(badTime, join(badTime, 'data/left.csv'), out('bad-time.parquet')),
    badType: () => bf(badType, join(badType, 'data/left.csv'), out('bad-type.parquet')),
    badSkip: () =>
      bf(badBoth, join(badBoth, 'data/left.csv'), out('bad-skip.parquet'), '--on-bad-row', 'skip'),
    noX: () => bf(noX, join(noX, 'data/left.csv'), out('no-x.parquet')),
    emptyEvents: () => bf(emptyEvents, join(emptyEvents, 'data/left.csv'), out('empty-events.parquet')),
    missingLeft: () => bf(good, join(good, 'data/nope.csv'), out('missing-left.parquet')),
  };
  writeFileSync(join(good, 'data/empty.csv'), '');
  jobs.emptyLeft = () => bf(good, join(good, 'data/empty.csv'), out('empty-left.parquet'));
  writeCsv(
    join(good, 'data/bad-left.csv'),
    ['row_id', 'uid', 'ts', 'label'],
    [...leftCsvRows(scenario.left.slice(0, 4)), { row_id: 99, uid: 'u1', ts: 'tomorrow', label: 'x' }],
  );
  jobs.badLeft = () => bf(good, join(good, 'data/bad-left.csv'), out('bad-left.parquet'));
  // Three at a time: the machine has two cores.
  const names = Object.keys(jobs);
  for (let i = 0; i < names.length; i += 3) {
    await Promise.all(names.slice(i, i + 3).map(async (n) => (runs[n] = await jobs[n]!())));
  }
}, 120_000);

afterAll(() => removeTempDirs());

describe('backfill inputs and outputs', () => {
  it('CSV left rows (ISO text at several offsets) → CSV output equals the oracle, left columns kept', async () => {
    expect(runs.csvOut!.code, runs.csvOut!.stderr).toBe(0);
    const out = await readOutput(join(root, 'out/good.csv'));
    expect(out.map((r) => Number(r.row_id))).toEqual(scenario.left.map((r) => r.row_id));
    expect(out.map((r) => r.label ?? null)).toEqual(scenario.left.map((r) => r.label));
    expect(mismatches(out, scenario.left, scenario.events, true)).toEqual([]);
  });

  it('JSONL left rows (epoch ms) with --partition i/2: disjoint, in left order, union = all rows = oracle', async () => {
    const seen: number[] = [];
    for (const p of ['p0', 'p1']) {
      expect(runs[p]!.code, runs[p]!.stderr).toBe(0);
      const part = await readOutput(join(root, `out/${p}.parquet`));
      const ids = part.map((r) => Number(r.row_id));
      expect(ids).toEqual([...ids].sort((a, b) => a - b)); // left order kept within a partition
      const rows = ids.map((id) => scenario.left.find((l) => l.row_id === id)!);
      expect(part.map((r) => r.label)).toEqual(rows.map((r) => r.label));
      expect(mismatches(part, rows, scenario.events, false)).toEqual([]);
      seen.push(...ids);
      expect(ids.length).toBeGreaterThan(0);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(scenario.left.map((r) => r.row_id).sort((a, b) => a - b));
  });

  it('an unparseable event time fails naming file, row and column, and writes nothing', () => {
    const r = runs.badTime!;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/events\.csv/);
    expect(r.stderr).toMatch(/\bts\b/);
    expect(namesRow(r.stderr, BAD_TIME_ROW), r.stderr).toBe(true);
    expect(leftovers(join(root, 'out'), 'bad-time.')).toEqual([]);
  });

  it('--on-bad-row skip skips the bad time and the wrong type, reports the count, and computes the rest', async () => {
    const r = runs.badSkip!;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/skipped 2 bad rows/i);
    const out = await readOutput(join(root, 'out/bad-skip.parquet'));
    const remaining = scenario.events.filter((e) => e.seq !== BAD_TIME_ROW - 1 && e.seq !== BAD_TYPE_ROW - 1);
    expect(mismatches(out, scenario.left, remaining, false)).toEqual([]);
  });

  it('a wrong type fails naming file, row and column', () => {
    const r = runs.badType!;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/events\.csv/);
    expect(r.stderr).toMatch(/\bn\b/);
    expect(namesRow(r.stderr, BAD_TYPE_ROW), r.stderr).toBe(true);
    expect(leftovers(join(root, 'out'), 'bad-type.')).toEqual([]);
  });

  it('a missing column fails naming the file and the column', () => {
    const r = runs.noX!;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/events\.csv/);
    expect(r.stderr).toMatch(/'x'|"x"|\bx\b/);
    expect(existsSync(join(root, 'out/no-x.parquet'))).toBe(false);
  });

  it('an empty events file fails naming the file', () => {
    const r = runs.emptyEvents!;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/events\.csv/);
    expect(r.stderr).toMatch(/empty/i);
    expect(existsSync(join(root, 'out/empty-events.parquet'))).toBe(false);
  });

  it('a missing or empty left file fails naming the file', () => {
    expect(runs.missingLeft!.code).not.toBe(0);
    expect(runs.missingLeft!.stderr).toMatch(/nope\.csv/);
    expect(runs.emptyLeft!.code).not.toBe(0);
    expect(runs.emptyLeft!.stderr).toMatch(/empty\.csv/);
    expect(runs.emptyLeft!.stderr).toMatch(/empty/i);
  });

  it('an unparseable left time fails naming the left file, row and column', () => {
    const r = runs.badLeft!;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bad-left\.csv/);
    expect(r.stderr).toMatch(/\bts\b/);
    expect(namesRow(r.stderr, 5), r.stderr).toBe(true);
    expect(leftovers(join(root, 'out'), 'bad-left.')).toEqual([]);
  });

  it('failed runs leave no temporary files next to the output', () => {
    const files = readdirSync(join(root, 'out')).sort();
    expect(files).toEqual(['bad-skip.parquet', 'good.csv', 'p0.parquet', 'p1.parquet'].sort());
  });
});
