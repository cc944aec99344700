import type { Command } from 'commander';
import { runBackfill } from '../../offline/backfill.ts';
import { parsePartition } from '../../offline/partition-hash.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, positiveInt } from '../option-parsers.ts';

interface BackfillCliOptions {
  readonly join: string;
  readonly left: string;
  readonly out: string;
  readonly repo: string;
  readonly format?: 'parquet' | 'csv';
  readonly partition?: string;
  readonly onBadRow: 'fail' | 'skip';
  readonly memoryLimit?: string;
  readonly threads?: number;
}

/** `tessera backfill`: point-in-time-correct training data for a join's left rows. */
export function register(program: Command): void {
  program
    .command('backfill')
    .description('compute every feature of a join for every left row at t = left.ts; writes Parquet or CSV')
    .requiredOption('--join <name>', 'the join (model) to compute')
    .requiredOption(
      '--left <file>',
      'left rows: Parquet, CSV or JSONL file or glob with the join keys and time column',
    )
    .requiredOption('--out <file>', 'output file (written to a temporary file, then renamed)')
    .option('--repo <dir>', 'feature repo folder with definition files', '.')
    .option('--format <format>', 'parquet | csv (default: by --out extension)', (v) =>
      choice(v, ['parquet', 'csv']),
    )
    .option(
      '--partition <i/N>',
      'only left rows whose partition key hashes to i of N (offline scale-out)',
      (v) => {
        parsePartition(v);
        return v;
      },
    )
    .option(
      '--on-bad-row <policy>',
      'fail | skip malformed rows (skipped rows are counted)',
      (v) => choice(v, ['fail', 'skip']),
      'fail',
    )
    .option('--memory-limit <size>', "DuckDB memory limit, e.g. '8GB'")
    .option('--threads <n>', 'DuckDB threads (default: all cores)', (v) => positiveInt(v))
    .action(async (options: BackfillCliOptions) => {
      const repo = await loadRepo(options.repo);
      const result = await runBackfill({
        repo,
        join: options.join,
        left: options.left,
        out: options.out,
        format: options.format,
        partition: options.partition,
        onBadRow: options.onBadRow,
        memoryLimit: options.memoryLimit,
        threads: options.threads,
      });
      const rate = Math.round(result.rows / Math.max(result.seconds, 1e-9));
      process.stdout.write(
        `Wrote ${result.rows} rows × ${result.features} features to ${options.out} in ${result.seconds.toFixed(1)}s ` +
          `(${rate} rows/s, peak RSS ${Math.round(result.peakRssMb)} MB)\n`,
      );
      if (result.badRows > 0)
        process.stdout.write(`Skipped ${result.badRows} bad rows (--on-bad-row skip)\n`);
    });
}
