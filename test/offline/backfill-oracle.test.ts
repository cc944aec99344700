import { existsSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
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
  sum,
  avg,
  topK,
  uniqueCount,
  variance,
} from '../../src/index.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { inWindow, naive, type OracleEvent, type OracleOp } from './naive-oracle.ts';
import { duck, readOutput, rng, same, tempDir, writeCsv, writeJsonl } from './support.ts';

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const dir = tempDir();
afterAll(() => {
  // leave the temp dir for post-mortem only when a test failed; vitest reruns get new dirs
});

interface Ev {
  card: string;
  amount: number | null;
  ts: number;
}

/** Events with ties in ts, times on hop boundaries, null values; written in shuffled order. */
function makeEvents(seed: number, n: number): Ev[] {
  const r = rng(seed);
  const out: Ev[] = [];
  for (let i = 0; i < n; i++) {
    const roll = r();
    let ts: number;
    if (roll < 0.15 && out.length > 0)
      ts = out[Math.floor(r() * out.length)].ts; // tie
    else if (roll < 0.3)
      ts = T0 + Math.floor(r() * 72) * HOUR + Math.floor(r() * 12) * 300_000; // on a 5m boundary
    else ts = T0 + Math.floor(r() * 72 * HOUR);
    out.push({ card: `k${Math.floor(r() * 5)}`, amount: r() < 0.1 ? null : Math.round(r() * 400) / 4, ts });
  }
  return out;
}

interface LeftRow {
  id: number;
  card: string;
  ts: number;
}

function makeLeft(seed: number, n: number, events: readonly Ev[]): LeftRow[] {
  const r = rng(seed);
  const out: LeftRow[] = [];
  for (let i = 0; i < n; i++) {
    const roll = r();
    let ts: number;
    if (roll < 0.3)
      ts = events[Math.floor(r() * events.length)].ts; // exactly on an event time
    else if (roll < 0.45)
      ts = T0 + Math.floor(r() * 76) * HOUR; // on an hour boundary
    else if (roll < 0.55)
      ts = T0 + Math.floor(r() * 76 * 12) * 300_000 + (r() < 0.5 ? 0 : 1); // on / just after 5m
    else if (roll < 0.6)
      ts = T0 - Math.floor(r() * HOUR); // before every event
    else ts = T0 + Math.floor(r() * 76 * HOUR);
    const card = r() < 0.1 ? 'k5' : r() < 0.05 ? 'nobody' : `k${Math.floor(r() * 5)}`;
    out.push({ id: i, card, ts });
  }
  return out;
}

const WINDOWS = [
  { label: '10m', size: 600_000, hop: 1_000 },
  { label: '1h', size: HOUR, hop: 300_000 },
  { label: '1d', size: 24 * HOUR, hop: HOUR },
  { label: '2h', size: 2 * HOUR, hop: 1_800_000, input: { size: '2h', hop: '30m' } },
  { label: 'lifetime', size: null, hop: 86_400_000 },
] as const;
const windowInputs = WINDOWS.map((w) => ('input' in w ? w.input : w.label));

function defs(path: string, format: 'parquet' | 'csv' | 'jsonl', leftPath: string) {
  const events = eventSource({
    name: 'payments',
    path,
    format,
    timeColumn: 'ts',
    schema: { card: col.string(), amount: col.float().nullable(), ts: col.timestamp() },
  });
  const stats = groupBy({
    name: 'card',
    source: events,
    keys: ['card'],
    aggregations: [
      count({ windows: windowInputs }),
      count('amount', { windows: ['1h'] }),
      sum('amount', { windows: windowInputs }),
      avg('amount', { windows: ['1d'] }),
      min('amount', { windows: ['1h', 'lifetime'] }),
      max('amount', { windows: windowInputs }),
      first('amount', { windows: ['1d'] }),
      last('amount', { windows: ['10m', '1d', 'lifetime'] }),
      lastK('amount', { k: 3, windows: ['1d'] }),
      firstK('amount', { k: 2, windows: ['1h'] }),
      topK('amount', { k: 2, windows: ['1d'] }),
      variance('amount', { windows: ['1d'] }),
      uniqueCount('amount', { windows: ['1d'] }),
      histogram('amount', { windows: ['1h'] }),
    ],
  });
  const left = eventSource({
    name: 'labels',
    path: leftPath,
    timeColumn: 'ts',
    schema: { id: col.int(), card: col.string(), ts: col.timestamp() },
  });
  return join({ name: 'model', left, parts: [{ groupBy: stats, keys: { card: 'card' }, prefix: 'p' }] });
}

const OPS: Array<{ op: OracleOp; name: string; windows: readonly string[] }> = [
  { op: 'count_events', name: 'card_count', windows: WINDOWS.map((w) => w.label) },
  { op: 'count', name: 'card_amount_count', windows: ['1h'] },
  { op: 'sum', name: 'card_amount_sum', windows: WINDOWS.map((w) => w.label) },
  { op: 'avg', name: 'card_amount_avg', windows: ['1d'] },
  { op: 'min', name: 'card_amount_min', windows: ['1h', 'lifetime'] },
  { op: 'max', name: 'card_amount_max', windows: WINDOWS.map((w) => w.label) },
  { op: 'first', name: 'card_amount_first', windows: ['1d'] },
  { op: 'last', name: 'card_amount_last', windows: ['10m', '1d', 'lifetime'] },
  { op: 'last_k3', name: 'card_amount_last_k', windows: ['1d'] },
  { op: 'first_k2', name: 'card_amount_first_k', windows: ['1h'] },
  { op: 'top_k2', name: 'card_amount_top_k', windows: ['1d'] },
  { op: 'variance', name: 'card_amount_variance', windows: ['1d'] },
  { op: 'unique_count', name: 'card_amount_unique_count', windows: ['1d'] },
  { op: 'histogram', name: 'card_amount_histogram', windows: ['1h'] },
];

function expectMatchesOracle(
  rows: Record<string, unknown>[],
  left: LeftRow[],
  events: OracleEvent[],
  jsonText: boolean,
) {
  expect(rows.map((r) => Number(r.id))).toEqual(left.map((l) => l.id)); // left order kept
  let checked = 0;
  for (let i = 0; i < left.length; i++) {
    const l = left[i];
    const mine = events.filter((e) => e.key === l.card);
    for (const { op, name, windows } of OPS) {
      for (const label of windows) {
        const w = WINDOWS.find((x) => x.label === label)!;
        const expected = naive(
          op,
          mine.filter((e) => inWindow(e.ts, l.ts, w.size, w.hop)),
        );
        let actual = rows[i][`p_${name}_${label}`];
        if (typeof actual === 'string' && (jsonText || op === 'histogram')) actual = JSON.parse(actual);
        if (typeof actual === 'string' && actual !== '' && !Number.isNaN(Number(actual)))
          actual = Number(actual);
        if (actual === '' || actual === undefined) actual = null;
        if (!same(actual, expected)) {
          throw new Error(
            `row ${i} (card ${l.card}, t ${l.ts}) p_${name}_${label}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
          );
        }
        checked++;
      }
    }
  }
  return checked;
}

/** Writes events over three files (sorted by name: seq = fileIndex * 2^32 + row). */
function split(events: Ev[]): Ev[][] {
  return [events.slice(0, 200), events.slice(200, 450), events.slice(450)];
}

function oracleEvents(files: Ev[][]): OracleEvent[] {
  return files.flatMap((rows, f) =>
    rows.map((e, row) => ({ key: e.card, ts: e.ts, seq: f * 2 ** 32 + row, value: e.amount })),
  );
}

describe('runBackfill against a naive oracle (DESIGN §1)', () => {
  const events = makeEvents(7, 700);
  const left = makeLeft(11, 400, events);
  const files = split(events);

  it('Parquet events with TIMESTAMP times, Parquet left, Parquet out', async () => {
    await duck(async (run) => {
      for (const [f, rows] of files.entries()) {
        const csv = joinPath(dir, `pq-src-${f}.csv`);
        writeCsv(
          csv,
          ['card', 'amount', 'ts'],
          rows.map((e) => ({ ...e, ts: e.ts })),
        );
        await run(
          `COPY (SELECT card, amount::DOUBLE AS amount, make_timestamp(ts::BIGINT * 1000) AS ts FROM read_csv('${csv}', header = true, types = {'ts': 'BIGINT', 'amount': 'DOUBLE', 'card': 'VARCHAR'})) TO '${joinPath(dir, `ev-${f}.parquet`)}'`,
        );
      }
      writeCsv(joinPath(dir, 'left.csv'), ['id', 'card', 'ts'], left);
      await run(
        `COPY (SELECT id, card, make_timestamp(ts::BIGINT * 1000) AS ts FROM read_csv('${joinPath(dir, 'left.csv')}', header = true, types = {'ts': 'BIGINT', 'card': 'VARCHAR'})) TO '${joinPath(dir, 'left.parquet')}'`,
      );
    });
    const model = defs(joinPath(dir, 'ev-*.parquet'), 'parquet', joinPath(dir, 'left.parquet'));
    const out = joinPath(dir, 'out.parquet');
    const result = await runBackfill({
      join: model,
      left: joinPath(dir, 'left.parquet'),
      out,
      progress: false,
    });
    expect(result).toMatchObject({ rows: 400, badRows: 0 });
    expect(result.features).toBe(OPS.reduce((n, o) => n + o.windows.length, 0));
    const rows = await readOutput(out);
    expect(Object.keys(rows[0]).slice(0, 3)).toEqual(['id', 'card', 'ts']);
    expect(expectMatchesOracle(rows, left, oracleEvents(files), false)).toBeGreaterThan(10_000);
  });

  it('CSV events with ISO text times, JSONL left with epoch ms, CSV out', async () => {
    const iso = (ms: number, i: number) => {
      const s = new Date(ms).toISOString();
      return i % 3 === 0 ? s.replace('Z', '') : i % 3 === 1 ? s.replace('T', ' ') : s.replace('Z', '+00:00');
    };
    for (const [f, rows] of files.entries()) {
      writeCsv(
        joinPath(dir, `ev-${f}.csv`),
        ['card', 'amount', 'ts'],
        rows.map((e, i) => ({ ...e, ts: iso(e.ts, i) })),
      );
    }
    writeJsonl(joinPath(dir, 'left.jsonl'), left);
    const model = defs(joinPath(dir, 'ev-*.csv'), 'csv', joinPath(dir, 'left.jsonl'));
    const out = joinPath(dir, 'out.csv');
    await runBackfill({ join: model, left: joinPath(dir, 'left.jsonl'), out, progress: false });
    const rows = await readOutput(out);
    expectMatchesOracle(rows, left, oracleEvents(files), true);
  });

  it('JSONL events with epoch-ms integer times', async () => {
    for (const [f, rows] of files.entries()) writeJsonl(joinPath(dir, `ev-${f}.jsonl`), rows);
    const model = defs(joinPath(dir, 'ev-*.jsonl'), 'jsonl', joinPath(dir, 'left.parquet'));
    const out = joinPath(dir, 'out-jsonl.parquet');
    await runBackfill({ join: model, left: joinPath(dir, 'left.parquet'), out, progress: false });
    expectMatchesOracle(await readOutput(out), left, oracleEvents(files), false);
  });

  it('--partition i/N jobs together produce exactly the full output', async () => {
    const model = defs(joinPath(dir, 'ev-*.parquet'), 'parquet', joinPath(dir, 'left.parquet'));
    const full = await readOutput(joinPath(dir, 'out.parquet'));
    const union: Record<string, unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      const out = joinPath(dir, `part-${i}.parquet`);
      const r = await runBackfill({
        join: model,
        left: joinPath(dir, 'left.parquet'),
        out,
        partition: `${i}/3`,
        progress: false,
      });
      const rows = await readOutput(out);
      expect(r.rows).toBe(rows.length);
      expect(rows.length).toBeGreaterThan(0);
      // each card lands in exactly one partition
      const cards = new Set(rows.map((row) => row.card));
      for (const other of union) expect(cards.has(other.card)).toBe(false);
      union.push(...rows);
    }
    union.sort((a, b) => Number(a.id) - Number(b.id));
    expect(union.length).toBe(full.length);
    for (let i = 0; i < full.length; i++) expect(same(union[i], full[i])).toBe(true);
    expect(existsSync(joinPath(dir, 'part-0.parquet'))).toBe(true);
  });
});
