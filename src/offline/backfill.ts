import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join as joinPath, resolve } from 'node:path';
import { refuseBroken } from '../define/definition-context.ts';
import { featureRefs } from '../define/feature-refs.ts';
import type { JoinDef, SourceDef } from '../define/types.ts';
import type { BadRowPolicy } from './bad-input.ts';
import { computeDerivations } from './derivations.ts';
import { ident, lit, openScratchDb } from './duck.ts';
import {
  featureColumn,
  outputSql,
  scalarColumn,
  type OutputColumn,
  type OutputFormat,
} from './output-columns.ts';
import { parsePartition, type PartitionSpec } from './partition-hash.ts';
import { preparePart, sweepPart, type PreparedPart } from './part-sweep.ts';
import { createProgress } from './progress.ts';
import { LEFT_TABLE, QUERY_TABLE, stageLeft } from './stage-left.ts';
import { stageSource, type StagedSource } from './stage-source.ts';

export interface BackfillOptions {
  /** The join to compute: a definition, or its name in `repo`. */
  readonly join: JoinDef | string;
  /** Definitions to look `join` up in; `dir` is where relative source paths resolve (default: cwd). */
  readonly repo?: { readonly dir: string; readonly joins: readonly JoinDef[] };
  /** Left rows file or glob (Parquet, CSV or JSONL), relative to cwd. */
  readonly left: string;
  /** Output file; written to a temporary file in the same directory, then renamed. */
  readonly out: string;
  /** Default: by the output extension (`.csv` → csv, else parquet). */
  readonly format?: OutputFormat;
  /** `i/N` or `{ index, count }`: only the left rows whose partition key hashes to `i`. */
  readonly partition?: string | PartitionSpec;
  /** `fail` (default): stop at the first malformed row; `skip`: skip, count and report them. */
  readonly onBadRow?: BadRowPolicy;
  /** DuckDB memory limit, e.g. '8GB' (default: 60% of RAM). */
  readonly memoryLimit?: string;
  /** DuckDB threads (default: all cores). */
  readonly threads?: number;
  /** Draw a progress bar on stderr (default: when stderr is a TTY). */
  readonly progress?: boolean;
}

export interface BackfillResult {
  /** Left rows written. */
  readonly rows: number;
  /** Feature columns per row (aggregations × windows, plus derivations). */
  readonly features: number;
  /** Malformed rows skipped (sources and left), with `onBadRow: 'skip'`. */
  readonly badRows: number;
  readonly seconds: number;
  /** Peak resident set size of the process (JS and DuckDB), in MiB. */
  readonly peakRssMb: number;
  readonly out: string;
}

/**
 * Computes every feature of a join for every left row at `t = left.ts` (DESIGN §1) and writes the left
 * rows, in order and with all their columns, followed by the features, to Parquet or CSV.
 *
 * @example
 * const r = await runBackfill({ repo, join: 'fraud_model', left: 'data/charges.parquet', out: 'train.parquet' });
 * // train.parquet: charge_id, card_id, ..., card_stats_count_5m, card_stats_amount_sum_1h, ..., amount_vs_avg
 * console.log(r.rows, r.features, r.seconds, r.peakRssMb);
 */
/** The output format: explicit, else by extension; an unknown extension is an error, never a silent guess. */
function outputFormat(out: string, explicit: OutputFormat | undefined): OutputFormat {
  if (explicit) return explicit;
  const lower = out.toLowerCase();
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.parquet') || lower.endsWith('.pq')) return 'parquet';
  throw new Error(
    `backfill --out '${out}': cannot tell the output format from the file name; name it .parquet or .csv, or pass --format parquet|csv`,
  );
}

export async function runBackfill(options: BackfillOptions): Promise<BackfillResult> {
  const started = performance.now();
  const join = resolveJoin(options);
  const onBadRow = options.onBadRow ?? 'fail';
  const format = outputFormat(options.out, options.format);
  const partition =
    typeof options.partition === 'string' ? parsePartition(options.partition) : options.partition;
  const baseDir = options.repo?.dir ?? process.cwd();
  const out = resolve(options.out);
  const outDir = await stat(dirname(out)).catch(() => undefined);
  if (!outDir?.isDirectory()) {
    throw new Error(
      `backfill --out '${options.out}': folder '${dirname(out)}' does not exist; create it first (e.g. mkdir -p ${dirname(out)})`,
    );
  }
  const temp = joinPath(dirname(out), `.${basename(out)}.${randomBytes(4).toString('hex')}.tmp`);

  const debug = process.env.TESSERA_DEBUG
    ? (label: string) =>
        process.stderr.write(
          `[backfill ${((performance.now() - started) / 1000).toFixed(2)}s cpu ${(process.cpuUsage().user / 1e6).toFixed(2)}s] ${label}\n`,
        )
    : () => {};
  const db = await openScratchDb({ memoryLimit: options.memoryLimit, threads: options.threads });
  try {
    const conn = db.conn;
    const left = await stageLeft(conn, join, options.left, process.cwd(), { onBadRow, partition });
    let badRows = left.badRows;
    debug('left staged');

    // Stage each source once, however many parts read it.
    const staged = new Map<SourceDef, StagedSource>();
    for (const part of join.parts) {
      const source = part.groupBy.source;
      if (staged.has(source)) continue;
      const s = await stageSource(conn, source, { baseDir, onBadRow, tableName: `__src${staged.size}` });
      staged.set(source, s);
      debug(`source ${source.name} staged`);
      badRows += s.badRows;
    }

    const partColumns: OutputColumn[][] = join.parts.map(() => []);
    for (const ref of featureRefs(join)) {
      const groupBy = join.parts[ref.partIndex].groupBy;
      partColumns[ref.partIndex].push(
        featureColumn(ref.name, groupBy, groupBy.aggregations[ref.aggregationIndex], format),
      );
    }
    const derivationColumns = join.derivations.map((d) => scalarColumn(d.name, d.type));
    checkNames(join, left.columns, [...partColumns.flat(), ...derivationColumns]);

    const progress = createProgress(
      left.rows * join.parts.length,
      options.progress ?? process.stderr.isTTY === true,
    );
    try {
      // DuckDB stages part p + 1 while JS sweeps part p.
      const prepare = (p: number) => {
        const part = join.parts[p];
        const promise = preparePart(conn, part, staged.get(part.groupBy.source)!, `__res${p}`);
        promise.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
        return promise;
      };
      let next: Promise<PreparedPart> | null = prepare(0);
      try {
        for (let p = 0; p < join.parts.length; p++) {
          progress.phase(join.parts[p].groupBy.name);
          const prepared: PreparedPart = await next!;
          next = p + 1 < join.parts.length ? prepare(p + 1) : null;
          await sweepPart(conn, prepared, partColumns[p], `__res${p}`, (n) => progress.add(n));
          debug(`part ${join.parts[p].groupBy.name} swept`);
        }
      } finally {
        await next?.catch(() => {}); // let a pending stage finish before the database closes
      }
    } finally {
      progress.done();
    }
    if (join.derivations.length > 0) {
      await computeDerivations(conn, join, left.columns, partColumns, derivationColumns, '__deriv');
    }

    debug('derivations');
    const select = [
      ...left.columns.map((c) => `l.${ident(c)}`),
      ...partColumns.flatMap((cols, p) =>
        cols.map((c) => `${outputSql(c, `r${p}.${ident(c.name)}`)} AS ${ident(c.name)}`),
      ),
      ...derivationColumns.map((c) => `${outputSql(c, `d.${ident(c.name)}`)} AS ${ident(c.name)}`),
    ];
    const joins = [
      `JOIN ${LEFT_TABLE} l ON l.rowid = q.__rid`,
      ...partColumns.map((_, p) => `JOIN __res${p} r${p} ON r${p}.__rid = q.__rid`),
      ...(derivationColumns.length > 0 ? ['JOIN __deriv d ON d.__rid = q.__rid'] : []),
    ];
    const copyOptions = format === 'csv' ? '(FORMAT csv, HEADER true)' : '(FORMAT parquet)';
    try {
      await conn.run(
        `COPY (SELECT ${select.join(', ')} FROM ${QUERY_TABLE} q ${joins.join(' ')} ORDER BY q.__rid) TO ${lit(temp)} ${copyOptions}`,
      );
      renameSync(temp, out);
      debug('written');
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
    return {
      rows: left.rows,
      features: partColumns.flat().length + derivationColumns.length,
      badRows,
      seconds: (performance.now() - started) / 1000,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      out,
    };
  } finally {
    db.close();
  }
}

function resolveJoin(options: BackfillOptions): JoinDef {
  if (typeof options.join !== 'string') {
    refuseBroken([options.join]); // a definition a failed loadRepo left broken in the module cache
    return options.join;
  }
  const joins = options.repo?.joins ?? [];
  const found = joins.find((j) => j.name === options.join);
  if (!found) {
    const known = joins.map((j) => j.name).join(', ') || 'none';
    throw new Error(
      `No join named '${options.join}' in the feature repo (joins: ${known}). Fix: pass --join with one of them.`,
    );
  }
  return found;
}

function checkNames(join: JoinDef, leftColumns: readonly string[], features: readonly OutputColumn[]): void {
  const left = new Set(leftColumns);
  const clash = features.find((f) => left.has(f.name));
  if (clash) {
    throw new Error(
      `Join '${join.name}': feature '${clash.name}' has the same name as a column of the left file. ` +
        `Fix: rename the left column, set a part prefix, or override the feature name.`,
    );
  }
}
