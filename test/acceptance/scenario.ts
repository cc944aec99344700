/**
 * A random but seeded scenario written the way a user would: events in three file formats, left rows with
 * extra columns, and a feature repo whose aggregations the oracle mirrors.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { oWindow, type OAgg, type OEvent, type OWindow, type Value } from './oracle.ts';
import { PKG, duckRun, rng, writeCsv, writeJsonl } from './support.ts';

export const T0 = Date.UTC(2026, 2, 1);
export const DAY = 86_400_000;
export const KEYS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
const STRINGS = ['a', 'b', 'c', 'd', 'zz', 'A', 'b c', 'x,y'];

export type WindowSpec = string | { size: string; hop: string };
export const ALL_WINDOWS: WindowSpec[] = [
  '30s',
  '10m',
  '1h',
  '1d',
  '7d',
  'lifetime',
  { size: '2h', hop: '20m' },
  { size: '3d', hop: '6h' },
];

export interface AggCase extends OAgg {
  /** The public helper's name, e.g. 'firstK'. */
  readonly helper: string;
}

/** Every op of DESIGN §1, on int (n), float (x) and string (s) inputs where the op allows them. */
export const FULL_AGGS: AggCase[] = [
  { helper: 'count', op: 'count', input: null },
  { helper: 'count', op: 'count', input: 'x' },
  { helper: 'sum', op: 'sum', input: 'n' },
  { helper: 'sum', op: 'sum', input: 'x' },
  { helper: 'avg', op: 'avg', input: 'x' },
  { helper: 'min', op: 'min', input: 'n' },
  { helper: 'max', op: 'max', input: 'x' },
  { helper: 'min', op: 'min', input: 's' },
  { helper: 'max', op: 'max', input: 's' },
  { helper: 'variance', op: 'variance', input: 'x' },
  { helper: 'stddev', op: 'stddev', input: 'n' },
  { helper: 'first', op: 'first', input: 's' },
  { helper: 'last', op: 'last', input: 's' },
  { helper: 'first', op: 'first', input: 'n' },
  { helper: 'last', op: 'last', input: 'x' },
  { helper: 'firstK', op: 'first_k', input: 's', k: 3 },
  { helper: 'lastK', op: 'last_k', input: 'n', k: 3 },
  { helper: 'topK', op: 'top_k', input: 'x', k: 3 },
  { helper: 'bottomK', op: 'bottom_k', input: 'n', k: 4 },
  { helper: 'topK', op: 'top_k', input: 's', k: 2 },
  { helper: 'uniqueCount', op: 'unique_count', input: 's' },
  { helper: 'uniqueCount', op: 'unique_count', input: 'n' },
  { helper: 'approxUniqueCount', op: 'approx_unique_count', input: 's' },
  { helper: 'approxUniqueCount', op: 'approx_unique_count', input: 'n' },
  { helper: 'approxPercentile', op: 'approx_percentile', input: 'x', percentiles: [0.1, 0.5, 0.9, 0.99] },
  { helper: 'histogram', op: 'histogram', input: 's' },
  { helper: 'histogram', op: 'histogram', input: 'n' },
];

/** A small set for the CSV and JSONL sources: enough to prove their times parse to the same instants. */
export const SMALL_AGGS: AggCase[] = [
  { helper: 'count', op: 'count', input: null },
  { helper: 'sum', op: 'sum', input: 'x' },
  { helper: 'first', op: 'first', input: 's' },
  { helper: 'last', op: 'last', input: 'n' },
];

export interface Feature {
  readonly name: string;
  readonly agg: AggCase;
  readonly window: OWindow;
  /** Which event set (source) it aggregates. */
  readonly source: 'pq' | 'csv' | 'js';
}

export function featureName(prefix: string | undefined, gb: string, agg: OAgg, w: OWindow): string {
  return `${prefix ? `${prefix}_` : ''}${gb}_${agg.input ? `${agg.input}_` : ''}${agg.op}_${w.label}`;
}

export function aggCode(aggs: readonly AggCase[], windows: readonly WindowSpec[]): string {
  const win = JSON.stringify(windows);
  return aggs
    .map((a) => {
      const opts = [
        a.k !== undefined ? `k: ${a.k}` : '',
        a.percentiles ? `percentiles: ${JSON.stringify(a.percentiles)}` : '',
        `windows: ${win}`,
      ]
        .filter(Boolean)
        .join(', ');
      return a.input === null ? `${a.helper}({ ${opts} })` : `${a.helper}('${a.input}', { ${opts} })`;
    })
    .join(',\n    ');
}

export interface LeftRow {
  readonly row_id: number;
  readonly uid: string | null;
  readonly ts: number;
  readonly label: string | null;
}

export interface Scenario {
  readonly events: OEvent[];
  readonly left: LeftRow[];
}

/** ISO-8601 text of an instant at a UTC offset (minutes), e.g. '2026-03-01T10:00:00.123+02:00'. */
export function isoAt(ms: number, offsetMin: number | 'Z' | 'none', sep = 'T'): string {
  const off = typeof offsetMin === 'number' ? offsetMin : 0;
  const local = new Date(ms + off * 60_000).toISOString().slice(0, 23).replace('T', sep);
  if (offsetMin === 'Z') return `${local}Z`;
  if (offsetMin === 'none') return local;
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** Random events over 9 days with bursts, ties, hop-aligned times and nulls, in shuffled file order. */
export function makeScenario(seed: number, nEvents: number, nLeft: number): Scenario {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const raw: Array<{ key: string; ts: number; values: Record<string, Value> }> = [];
  for (let i = 0; i < nEvents; i++) {
    const key = r() < 0.35 ? 'u0' : pick(KEYS);
    const mode = r();
    let ts: number;
    if (raw.length > 0 && mode < 0.3) ts = pick(raw).ts + Math.floor(r() * 120_000);
    else if (raw.length > 0 && mode < 0.4) ts = pick(raw).ts;
    else if (mode < 0.55) {
      const step = pick([1000, 300_000, 1_200_000, 3_600_000, 21_600_000]);
      ts = T0 + Math.floor((r() * 9 * DAY) / step) * step;
    } else ts = T0 + Math.floor(r() * 9 * DAY);
    raw.push({
      key,
      ts,
      values: {
        n: r() < 0.15 ? null : Math.floor(r() * 26) - 5,
        x: r() < 0.15 ? null : Math.round((r() * 550 - 50) * 100) / 100,
        s: r() < 0.15 ? null : pick(STRINGS),
      },
    });
  }
  for (let i = raw.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [raw[i], raw[j]] = [raw[j]!, raw[i]!];
  }
  const events: OEvent[] = raw.map((e, seq) => ({ ...e, seq }));
  const sizes = ALL_WINDOWS.map(oWindow).filter((w) => w.sizeMs !== null);
  const left: LeftRow[] = [];
  for (let i = 0; i < nLeft; i++) {
    const e = pick(events);
    const w = pick(sizes);
    const mode = r();
    let ts: number;
    if (mode < 0.2) ts = e.ts;
    else if (mode < 0.3) ts = e.ts + pick([1, -1]);
    else if (mode < 0.45) ts = e.ts + w.sizeMs!;
    else if (mode < 0.55) ts = e.ts + w.sizeMs! + pick([w.hopMs, w.hopMs - 1, 1, -1]);
    else if (mode < 0.7) {
      const step = pick([1000, 300_000, 1_200_000, 3_600_000, 21_600_000, DAY]);
      ts = T0 + Math.floor((r() * 10 * DAY) / step) * step;
    } else if (mode < 0.74) ts = T0 - Math.floor(r() * DAY);
    else if (mode < 0.77) ts = T0 + 20 * DAY;
    else ts = T0 + Math.floor(r() * 10 * DAY);
    const kr = r();
    const uid = kr < 0.05 ? null : kr < 0.12 ? 'ghost' : mode < 0.55 ? e.key : pick(KEYS);
    left.push({ row_id: i * 7 + 3, uid, ts, label: r() < 0.1 ? null : `L${i}` });
  }
  return { events, left };
}

/** Writes events as Parquet with a TIMESTAMP time column (ms precision), in the given order. */
export async function writeEventsParquet(dir: string, file: string, events: readonly OEvent[]) {
  const tmp = join(dir, `${file}.src.jsonl`);
  writeJsonl(
    tmp,
    events.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
  );
  await duckRun(
    `COPY (SELECT user, n, x, s, epoch_ms(ts) AS ts FROM read_json('${tmp}', format = 'newline_delimited',
       columns = {user: 'VARCHAR', n: 'BIGINT', x: 'DOUBLE', s: 'VARCHAR', ts: 'BIGINT'}))
     TO '${join(dir, file)}' (FORMAT parquet)`,
  );
}

const OFFSETS: Array<number | 'Z' | 'none'> = ['Z', 'Z', 120, 330, -180, -570, 'none'];

/** Writes events as CSV with ISO-8601 text times at varied UTC offsets ('Z', +05:30, -03:00, none, ...). */
export function writeEventsCsv(path: string, events: readonly OEvent[]): void {
  writeCsv(
    path,
    ['user', 'n', 'x', 's', 'ts'],
    events.map((e, i) => ({
      user: e.key,
      ...e.values,
      ts: isoAt(e.ts, OFFSETS[i % OFFSETS.length]!, i % 5 === 0 ? ' ' : 'T'),
    })),
  );
}

/** Writes events as JSONL with epoch-ms integer times. */
export function writeEventsJsonl(path: string, events: readonly OEvent[]): void {
  writeJsonl(
    path,
    events.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
  );
}

/** Writes left rows as Parquet with a TIMESTAMP column. */
export async function writeLeftParquet(dir: string, file: string, left: readonly LeftRow[]) {
  const tmp = join(dir, `${file}.src.jsonl`);
  writeJsonl(tmp, left);
  await duckRun(
    `COPY (SELECT row_id, uid, epoch_ms(ts) AS ts, label FROM read_json('${tmp}', format = 'newline_delimited',
       columns = {row_id: 'BIGINT', uid: 'VARCHAR', ts: 'BIGINT', label: 'VARCHAR'}))
     TO '${join(dir, file)}' (FORMAT parquet)`,
  );
}

/** The event source schema every generated source uses. */
export const SOURCE_SCHEMA = `{
    user: col.string(),
    n: col.int().nullable(),
    x: col.float().nullable(),
    s: col.string().nullable(),
    ts: col.timestamp(),
  }`;

export const LEFT_SCHEMA = `{
    row_id: col.int(),
    uid: col.string().nullable(),
    ts: col.timestamp(),
    label: col.string().nullable(),
  }`;

export const IMPORTS = `import {
  col, eventSource, groupBy, join,
  count, sum, avg, min, max, variance, stddev, first, last, firstK, lastK, topK, bottomK,
  uniqueCount, approxUniqueCount, approxPercentile, histogram,
} from '${PKG}';\n`;

/** Writes a definition file into the repo folder. */
export function writeDefs(repo: string, file: string, code: string): void {
  writeFileSync(join(repo, file), IMPORTS + code);
}
