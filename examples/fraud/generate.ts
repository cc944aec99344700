/**
 * Seeded generator of the fraud demo's synthetic charges.
 *
 * CLI: `npx tsx examples/fraud/generate.ts [--events N] [--seed S] [--out DIR]`
 * writes DIR/charges.parquet (default: 200000 events, seed 42, examples/fraud/data).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { planCharges } from './generator/charge-days.ts';
import { writeChargesParquet } from './generator/write-charges.ts';

export { planCharges, DEFAULT_DAYS, DEFAULT_START_MS, MIN_EVENTS } from './generator/charge-days.ts';
export type { Charge, FraudPattern } from './generator/charge.ts';

/** Where `npm start` keeps the demo data (git-ignored). */
export const DEFAULT_DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'data');
export const DEFAULT_EVENTS = 200_000;
export const DEFAULT_SEED = 42;

export interface GenerateOptions {
  /** Number of charges (default 200000). */
  readonly events?: number;
  /** PRNG seed (default 42): the same seed and size always produce identical files. */
  readonly seed?: number;
  /** Output directory, created if missing (default examples/fraud/data). */
  readonly outDir?: string;
  /** Output file name inside `outDir` (default charges.parquet). */
  readonly fileName?: string;
  /** First day of the period, epoch ms (default 2026-05-01); the period lasts `days` days (default 120). */
  readonly startMs?: number;
  readonly days?: number;
}

export interface GenerateResult {
  readonly path: string;
  readonly rows: number;
  /** All rows labeled fraud: planted attacks plus label noise. */
  readonly fraudRows: number;
  /** Planted attack charges by pattern. */
  readonly byPattern: Readonly<Record<string, number>>;
  readonly cards: number;
  readonly merchants: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly seconds: number;
}

/**
 * Generates the synthetic charges dataset as Parquet. Reusable by benchmarks.
 *
 * Columns: charge_id, ts (TIMESTAMP), card_id, merchant_id, merchant_category, amount (DOUBLE, negative
 * for refunds), email_domain, ip (nullable), device_id (nullable), country, card_bin, channel,
 * is_fraud (BOOLEAN), fraud_pattern (nullable ground truth: card_testing | velocity_burst | ip_ring | other).
 *
 * @example
 * const { path, rows } = await generateCharges({ events: 1_000_000, seed: 1, outDir: '/tmp/bench' });
 */
export async function generateCharges(options: GenerateOptions = {}): Promise<GenerateResult> {
  const started = performance.now();
  const outDir = resolve(options.outDir ?? DEFAULT_DATA_DIR);
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, options.fileName ?? 'charges.parquet');
  const plan = planCharges({
    events: options.events ?? DEFAULT_EVENTS,
    seed: options.seed ?? DEFAULT_SEED,
    startMs: options.startMs,
    days: options.days,
  });
  const { rows, fraudRows } = await writeChargesParquet(plan.days(), path);
  return {
    path,
    rows,
    fraudRows,
    byPattern: plan.byPattern,
    cards: plan.world.cards.length,
    merchants: plan.world.merchants.length,
    fromMs: plan.fromMs,
    toMs: plan.toMs,
    seconds: (performance.now() - started) / 1000,
  };
}

function parseIntFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n))
    throw new Error(`--${name} must be an integer (got '${value}'), e.g. --${name} 100000.`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { events: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' } },
  });
  const result = await generateCharges({
    events: parseIntFlag('events', values.events, DEFAULT_EVENTS),
    seed: parseIntFlag('seed', values.seed, DEFAULT_SEED),
    outDir: values.out,
  });
  const patterns = Object.entries(result.byPattern)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `wrote ${result.path}: ${result.rows} charges (${result.fraudRows} fraud; planted: ${patterns}), ` +
      `${result.cards} cards, ${result.merchants} merchants, in ${result.seconds.toFixed(1)}s`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
