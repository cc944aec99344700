/**
 * `npm run bench:backfill [--events N] [--left M] [--keys K] [--days D] [--skew X] [--seed S] [--dir DIR]`
 *
 * Generates seeded data, then times in the same run, each in its own process (so peak RSS is its own):
 * 1. the Tessera backfill (`runBackfill`) of 20 windowed features (count/sum/avg/min/max × 1h/1d/7d/30d);
 * 2. hand-written DuckDB SQL computing the same features with the same sawtooth windows.
 * Checks both outputs are equal (ints exact, floats to a relative 1e-9) and prints a table.
 * `--tessera-only` skips the baseline (memory runs such as 50M events / 10M left rows).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { runBackfill } from '../src/offline/backfill.ts';
import { benchJoin, BENCH_FEATURES } from './backfill/definitions.ts';
import { runBaseline } from './backfill/duckdb-baseline.ts';
import { generateBenchData } from './backfill/generate.ts';
import { exitOnHelp } from './args.ts';

interface Args {
  events: number;
  left: number;
  keys: number;
  days: number;
  /** Key popularity exponent: key index = floor(K * u^skew); 1 is uniform, 2 (default) gives hot keys. */
  skew: number;
  seed: number;
  dir: string;
  child?: 'tessera' | 'duckdb';
  eventsPath?: string;
  leftPath?: string;
  out?: string;
  /** Skip the SQL baseline (for memory runs at sizes where the range join takes too long). */
  tesseraOnly: boolean;
}

interface Measured {
  seconds: number;
  peakRssMb: number;
}

function parseArgs(argv: string[]): Args {
  exitOnHelp(argv, import.meta.url);
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number) => {
    const text = get(name);
    if (text === undefined) return fallback;
    const n = Number(text.replace(/_/g, '').replace(/[kK]$/, '000').replace(/[mM]$/, '000000'));
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got '${text}'`);
    return Math.round(n);
  };
  const events = num('events', 1_000_000);
  const left = num('left', Math.max(1, Math.round(events / 10)));
  return {
    events,
    left,
    keys: num('keys', Math.max(1, Math.round(events / 100))),
    days: num('days', 60),
    skew: num('skew', 2),
    seed: num('seed', 42),
    dir: get('dir') ?? join(tmpdir(), 'tessera-bench'),
    child: get('child') as Args['child'],
    eventsPath: get('events-path'),
    leftPath: get('left-path'),
    out: get('out'),
    tesseraOnly: argv.includes('--tessera-only'),
  };
}

async function child(args: Args): Promise<void> {
  let seconds: number;
  if (args.child === 'tessera') {
    const result = await runBackfill({
      join: benchJoin(args.eventsPath!, args.leftPath!),
      left: args.leftPath!,
      out: args.out!,
      progress: false,
    });
    seconds = result.seconds;
  } else {
    seconds = await runBaseline(args.eventsPath!, args.leftPath!, args.out!);
  }
  const measured: Measured = { seconds, peakRssMb: process.resourceUsage().maxRSS / 1024 };
  process.stdout.write(`${JSON.stringify(measured)}\n`);
}

function runChild(kind: 'tessera' | 'duckdb', eventsPath: string, leftPath: string, out: string): Measured {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      self,
      '--child',
      kind,
      '--events-path',
      eventsPath,
      '--left-path',
      leftPath,
      '--out',
      out,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
  );
  if (r.status !== 0) throw new Error(`${kind} run failed (exit ${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measured;
}

/** Counts feature values that differ between the two outputs (ints exact, floats to relative 1e-9). */
async function compare(
  a: string,
  b: string,
): Promise<{ rows: number; mismatches: number; example?: string }> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const differs = BENCH_FEATURES.map(({ name }) => {
      const x = `x.${name}`;
      const y = `y.${name}`;
      return `CASE WHEN ${x} IS NOT DISTINCT FROM ${y} THEN 0 WHEN ${x} IS NULL OR ${y} IS NULL THEN 1 WHEN abs(${x} - ${y}) <= 1e-9 * greatest(1, abs(${x}), abs(${y})) THEN 0 ELSE 1 END`;
    });
    // Rows pair up by position in each file (file_row_number), so order is checked along with values.
    const reader = await conn.runAndReadAll(`
      WITH x AS (SELECT file_row_number AS r, * FROM read_parquet('${a}', file_row_number = true)),
           y AS (SELECT file_row_number AS r, * FROM read_parquet('${b}', file_row_number = true)),
           d AS (SELECT coalesce(x.r, y.r) AS r, x.id AS xid, y.id AS yid, ${differs.map((d, i) => `${d} AS d${i}`).join(', ')} FROM x FULL JOIN y ON x.r = y.r)
      SELECT count(*)::DOUBLE AS rows,
             sum(CASE WHEN xid IS DISTINCT FROM yid THEN 1 ELSE 0 END + ${differs.map((_, i) => `d${i}`).join(' + ')})::DOUBLE AS mismatches,
             min(CASE WHEN xid IS DISTINCT FROM yid OR ${differs.map((_, i) => `d${i} = 1`).join(' OR ')} THEN r END)::DOUBLE AS first_bad
      FROM d`);
    const [rows, mismatches, firstBad] = reader.getRows()[0] as [number, number, number | null];
    return { rows, mismatches, example: firstBad === null ? undefined : `first differing row: ${firstBad}` };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return child(args);
  mkdirSync(args.dir, { recursive: true });
  const fmt = (n: number) => n.toLocaleString('en-US');
  console.log(
    `bench:backfill  ${fmt(args.events)} events, ${fmt(args.left)} left rows, ${fmt(args.keys)} keys (skew ${args.skew}) over ${args.days} days, ` +
      `${BENCH_FEATURES.length} features (seed ${args.seed})`,
  );
  const genStart = performance.now();
  const data = await generateBenchData(args);
  console.log(`data            ${((performance.now() - genStart) / 1000).toFixed(1)}s  ${data.events}`);
  const outTessera = join(args.dir, 'out-tessera.parquet');
  const outDuck = join(args.dir, 'out-duckdb.parquet');
  const tessera = runChild('tessera', data.events, data.left, outTessera);
  const row = (name: string, m: Measured) =>
    `| ${name.padEnd(16)} | ${m.seconds.toFixed(2).padStart(8)} | ${fmt(Math.round(args.left / m.seconds)).padStart(12)} | ` +
    `${fmt(Math.round(args.events / m.seconds)).padStart(13)} | ${fmt(Math.round(m.peakRssMb)).padStart(13)} |`;
  console.log('');
  console.log('| run              |   wall s |  left rows/s |      events/s | peak RSS MiB |');
  console.log('|------------------|----------|--------------|---------------|--------------|');
  console.log(row('tessera backfill', tessera));
  if (args.tesseraOnly) return;
  const duck = runChild('duckdb', data.events, data.left, outDuck);
  const check = await compare(outTessera, outDuck);
  console.log(row('duckdb SQL', duck));
  console.log('');
  console.log(`ratio tessera/duckdb (wall time): ${(tessera.seconds / duck.seconds).toFixed(2)}`);
  console.log(
    `check: ${fmt(check.rows)} rows × ${BENCH_FEATURES.length} features, ${fmt(check.mismatches)} mismatches` +
      (check.example ? ` (${check.example})` : ''),
  );
  if (check.mismatches > 0 || check.rows !== args.left) process.exitCode = 1;
}

await main();
