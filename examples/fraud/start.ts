/**
 * `npm start`: the fraud demo end to end on a fresh clone.
 *
 * 1. Generates the synthetic charges (examples/fraud/data/charges.parquet) if they are missing.
 * 2. Loads and validates the feature repo (examples/fraud/features) and backfills the `fraud_model` join for
 *    every charge of the last 30 days (the training rows; their features see the whole history), point-in-time
 *    correct, into examples/fraud/data/fraud_model.parquet.
 * 3. Prints rows, features, time taken, and the fraud rate by decile of a few features, so you can see
 *    the planted fraud patterns light up in the features.
 *
 * 4. Online: uploads the history into tiles (in a worker thread, alongside steps 2-3, since both are mostly
 *    single-threaded JavaScript), then starts `tessera serve` embedded (store, log, workers, API) fed by a
 *    small live stream of synthetic charges, and prints the URL and sample `curl` commands.
 *
 * Flags: --events N and --seed S (for newly generated data), --regenerate (discard existing data),
 * --no-serve (stop after the backfill), --serve-for S (stop serving after S seconds; default: Ctrl-C),
 * --port P (default 8080; 0 picks a free one).
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadRepo, type LoadedRepo } from '../../src/cli/load-repo.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { runOnlineDemo, uploadHistoryInThread, type HistoryUpload } from '../../src/serve/online-demo.ts';
import { fraudRateByDecile, formatDecileReport } from './decile-report.ts';
import { DEFAULT_DAYS, DEFAULT_EVENTS, DEFAULT_SEED, generateCharges } from './generate.ts';
import { writeTrainingRows } from './training-rows.ts';

const EXAMPLE_DIR = dirname(fileURLToPath(import.meta.url));
/** The feature repo: definition files only, so loading it never runs demo scripts. */
const REPO_DIR = join(EXAMPLE_DIR, 'features');
const DATA_DIR = join(EXAMPLE_DIR, 'data');
const CHARGES = join(DATA_DIR, 'charges.parquet');
const TRAINING_ROWS = join(DATA_DIR, 'training_rows.parquet');
const TRAINING_SET = join(DATA_DIR, 'fraud_model.parquet');
/** Online state of the demo (LMDB store, log); wiped and re-uploaded on every run. */
const ONLINE_DIR = join(DATA_DIR, 'online');
/** Charges the live stream of the online demo cycles through. */
const LIVE_POOL = 20_000;
/** Training rows are the charges of the last 30 days; their features see the whole 120-day history. */
const TRAINING_DAYS = 30;

/** Features whose deciles the summary shows, each with the planted pattern it should reveal. */
const SIGNAL_FEATURES: readonly { feature: string; reveals: string }[] = [
  {
    feature: 'card_velocity_merchant_id_unique_count_10m',
    reveals: 'card testing (many merchants in minutes)',
  },
  { feature: 'card_velocity_amount_sum_1h', reveals: 'velocity bursts (large spend in the last hour)' },
  {
    feature: 'ip_stats_card_id_unique_count_1d',
    reveals: 'IP rings (one IP paying with many cards in a day)',
  },
];

const rel = (path: string): string => relative(process.cwd(), path) || '.';
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

interface StartOptions {
  readonly events: number;
  readonly seed: number;
  readonly regenerate: boolean;
  readonly serve: boolean;
  readonly serveForMs: number | undefined;
  readonly port: number;
}

const USAGE = `Usage: npm start [-- options]
  --events N       charges to generate when the data is (re)generated (default ${DEFAULT_EVENTS})
  --seed S         generator seed (default ${DEFAULT_SEED})
  --regenerate     discard the existing data and generate it again
  --no-serve       stop after the backfill
  --serve-for S    stop serving after S seconds (default: serve until Ctrl-C)
  --port P         serving port (default 8080; 0 picks a free one)
  --help           print this`;

function parseOptions(): StartOptions {
  const { values } = (() => {
    try {
      return parseArgs({
        options: {
          events: { type: 'string' },
          seed: { type: 'string' },
          regenerate: { type: 'boolean', default: false },
          'no-serve': { type: 'boolean', default: false },
          'serve-for': { type: 'string' },
          port: { type: 'string' },
          help: { type: 'boolean', default: false },
        },
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${USAGE}`);
    }
  })();
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value.replaceAll('_', ''));
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`--${name} must be a positive integer (got '${value}').`);
    }
    return n;
  };
  return {
    events: int('events', values.events, DEFAULT_EVENTS),
    seed: int('seed', values.seed, DEFAULT_SEED),
    regenerate: values.regenerate ?? false,
    serve: !values['no-serve'],
    serveForMs:
      values['serve-for'] === undefined ? undefined : int('serve-for', values['serve-for'], 0) * 1000,
    port: values.port === '0' ? 0 : int('port', values.port, 8080),
  };
}

/** Phase 1: make sure the charges and the training rows exist. */
async function ensureData(options: StartOptions): Promise<void> {
  if (options.regenerate) {
    rmSync(CHARGES, { force: true });
    rmSync(TRAINING_ROWS, { force: true });
  }
  if (existsSync(CHARGES)) {
    console.log(`data      ${rel(CHARGES)} (exists; pass --regenerate to rebuild it)`);
  } else {
    await generate(options);
  }
  // Rebuilt whenever the charges are newer (e.g. regenerated by hand with generate.ts).
  if (!existsSync(TRAINING_ROWS) || statSync(TRAINING_ROWS).mtimeMs < statSync(CHARGES).mtimeMs) {
    const rows = await writeTrainingRows(CHARGES, TRAINING_ROWS, TRAINING_DAYS);
    console.log(
      `          training rows: the last ${TRAINING_DAYS} days, ${rows.toLocaleString('en-US')} charges → ${rel(TRAINING_ROWS)}`,
    );
  }
}

/**
 * The demo's history ends at the start of the current hour (generate.ts alone defaults to a fixed period):
 * the live stream is stamped now, so history ending months ago would leave every window at now empty but
 * for the live charges.
 */
function demoStartMs(now = Date.now()): number {
  return Math.floor(now / HOUR_MS) * HOUR_MS - DEFAULT_DAYS * 24 * HOUR_MS;
}
const HOUR_MS = 3_600_000;

async function generate(options: StartOptions): Promise<void> {
  const g = await generateCharges({
    events: options.events,
    seed: options.seed,
    outDir: DATA_DIR,
    startMs: demoStartMs(),
  });
  const planted = Object.entries(g.byPattern)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `data      generated ${g.rows.toLocaleString('en-US')} charges (seed ${options.seed}) in ${g.seconds.toFixed(1)}s ` +
      `→ ${rel(g.path)}\n          ${g.cards} cards, ${g.merchants} merchants over the ${DEFAULT_DAYS} days to ` +
      `${new Date(g.toMs).toISOString().slice(0, 16)}Z; ` +
      `${g.fraudRows} labeled fraud (planted: ${planted})`,
  );
}

/** Phase 2: backfill the training set and show that the features carry signal. */
async function backfillAndSummarize(repo: LoadedRepo): Promise<void> {
  const model = repo.joins.find((j) => j.name === 'fraud_model');
  if (!model) throw new Error(`the feature repo ${rel(REPO_DIR)} has no join named 'fraud_model'`);
  console.log(
    `repo      ${rel(REPO_DIR)}: ${plural(repo.sources.length, 'source')}, ${plural(repo.groupBys.length, 'group-by')}, ${plural(repo.joins.length, 'join')}`,
  );
  const result = await runBackfill({ repo, join: 'fraud_model', left: TRAINING_ROWS, out: TRAINING_SET });
  console.log(
    `backfill  fraud_model: ${result.rows.toLocaleString('en-US')} rows × ${result.features} features in ` +
      `${result.seconds.toFixed(1)}s (${Math.round(result.rows / result.seconds).toLocaleString('en-US')} rows/s, ` +
      `peak RSS ${Math.round(result.peakRssMb)} MB) → ${rel(TRAINING_SET)}`,
  );
  if (result.badRows > 0) console.log(`          skipped ${result.badRows} bad rows`);

  const base = await fraudRateByDecile(TRAINING_SET, 'amount');
  const total = base.rows.reduce((n, r) => n + r.rows, 0) + base.nullRows;
  const fraud = base.rows.reduce((n, r) => n + r.fraud, 0) + base.nullFraud;
  const baseRate = fraud / total;
  console.log(
    `\nfraud rate by feature decile (base rate ${(100 * baseRate).toFixed(2)}%; lift = rate / base rate):`,
  );
  for (const { feature, reveals } of SIGNAL_FEATURES) {
    console.log(`\n  → ${reveals}`);
    console.log(formatDecileReport(await fraudRateByDecile(TRAINING_SET, feature), baseRate));
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const started = performance.now();
  await ensureData(options);
  // The upload needs only the charges: it runs on the other core while this one backfills.
  const upload = options.serve ? uploadHistoryInThread(REPO_DIR, ONLINE_DIR) : null;
  let repo: LoadedRepo;
  try {
    repo = await loadRepo(REPO_DIR);
    await backfillAndSummarize(repo);
  } catch (error) {
    await upload?.cancel();
    throw error;
  }
  console.log(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)}s`);
  if (upload) await serveOnline(options, repo, upload.result);
}

/** Phase 3: serve fraud_model online, fed by live charges (recent generated charges replayed at now). */
async function serveOnline(
  options: StartOptions,
  repo: LoadedRepo,
  upload: Promise<HistoryUpload>,
): Promise<void> {
  const pool = await recentCharges(CHARGES, LIVE_POOL);
  console.log('\nonline    serving the history uploaded alongside the backfill (--no-serve skips this)');
  await runOnlineDemo({
    repo,
    join: 'fraud_model',
    dataDir: ONLINE_DIR,
    upload,
    pool,
    port: options.port,
    ...(options.serveForMs === undefined ? {} : { serveForMs: options.serveForMs }),
  });
}

/**
 * The last `n` purchases (amount > 0) of the charges file, in file order, without the ground truth
 * column: the live stream replays them with `ts` set to now. (Reading them back is ~20x quicker than
 * generating the 120 days again.)
 */
async function recentCharges(path: string, n: number): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(
        `SELECT * EXCLUDE (fraud_pattern, file_row_number) REPLACE (epoch_ms(ts)::DOUBLE AS ts) FROM (
           SELECT * FROM read_parquet('${path.replaceAll("'", "''")}', file_row_number = true)
           WHERE amount > 0 ORDER BY file_row_number DESC LIMIT ${n}
         ) ORDER BY file_row_number`,
      );
      return reader.getRowObjectsJS() as Record<string, unknown>[];
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(`npm start failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
