/**
 * `npm start`: the fraud demo end to end on a fresh clone.
 *
 * 1. Generates the synthetic charges (examples/fraud/data/charges.parquet) if they are missing.
 * 2. Loads and validates the feature repo (examples/fraud/features) and backfills the `fraud_model` join for every
 *    charge, point-in-time correct, into examples/fraud/data/fraud_model.parquet.
 * 3. Prints rows, features, time taken, and the fraud rate by decile of a few features, so you can see
 *    the planted fraud patterns light up in the features.
 *
 * Flags: --events N and --seed S (for newly generated data), --regenerate (discard existing data).
 */
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { fraudRateByDecile, formatDecileReport } from './decile-report.ts';
import { DEFAULT_EVENTS, DEFAULT_SEED, generateCharges } from './generate.ts';

const EXAMPLE_DIR = dirname(fileURLToPath(import.meta.url));
/** The feature repo: definition files only, so loading it never runs demo scripts. */
const REPO_DIR = join(EXAMPLE_DIR, 'features');
const DATA_DIR = join(EXAMPLE_DIR, 'data');
const CHARGES = join(DATA_DIR, 'charges.parquet');
const TRAINING_SET = join(DATA_DIR, 'fraud_model.parquet');

/** Features whose deciles the summary shows, each with the planted pattern it should reveal. */
const SIGNAL_FEATURES: readonly { feature: string; reveals: string }[] = [
  {
    feature: 'card_velocity_merchant_id_unique_count_10m',
    reveals: 'card testing (many merchants in minutes)',
  },
  { feature: 'card_velocity_amount_sum_1h', reveals: 'velocity bursts (large spend in the last hour)' },
  { feature: 'ip_stats_card_id_unique_count_7d', reveals: 'IP rings (one IP paying with many cards)' },
];

const rel = (path: string): string => relative(process.cwd(), path) || '.';

interface StartOptions {
  readonly events: number;
  readonly seed: number;
  readonly regenerate: boolean;
}

function parseOptions(): StartOptions {
  const { values } = parseArgs({
    options: {
      events: { type: 'string' },
      seed: { type: 'string' },
      regenerate: { type: 'boolean', default: false },
    },
  });
  const int = (name: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value.replaceAll('_', ''));
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--${name} must be a positive integer (got '${value}').`);
    return n;
  };
  return {
    events: int('events', values.events, DEFAULT_EVENTS),
    seed: int('seed', values.seed, DEFAULT_SEED),
    regenerate: values.regenerate ?? false,
  };
}

/** Phase 1: make sure the charges exist. */
async function ensureData(options: StartOptions): Promise<void> {
  if (options.regenerate) rmSync(CHARGES, { force: true });
  if (existsSync(CHARGES)) {
    console.log(`data      ${rel(CHARGES)} (exists; pass --regenerate to rebuild it)`);
    return;
  }
  const g = await generateCharges({ events: options.events, seed: options.seed, outDir: DATA_DIR });
  const planted = Object.entries(g.byPattern)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `data      generated ${g.rows.toLocaleString('en-US')} charges (seed ${options.seed}) in ${g.seconds.toFixed(1)}s ` +
      `→ ${rel(g.path)}\n          ${g.cards} cards, ${g.merchants} merchants over 120 days; ` +
      `${g.fraudRows} labeled fraud (planted: ${planted})`,
  );
}

/** Phase 2: backfill the training set and show that the features carry signal. */
async function backfillAndSummarize(): Promise<void> {
  const repo = await loadRepo(REPO_DIR);
  const model = repo.joins.find((j) => j.name === 'fraud_model');
  if (!model) throw new Error(`the feature repo ${rel(REPO_DIR)} has no join named 'fraud_model'`);
  console.log(
    `repo      ${rel(REPO_DIR)}: ${repo.sources.length} source, ${repo.groupBys.length} group-bys, ${repo.joins.length} join`,
  );
  const result = await runBackfill({ repo, join: 'fraud_model', left: CHARGES, out: TRAINING_SET });
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
  await backfillAndSummarize();
  // Online phase (issue 3, in progress): upload tiles, start `tessera serve` with a live charge stream,
  // print the URL and a sample curl. It plugs in here as one more awaited phase.
  console.log(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)}s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(`npm start failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
