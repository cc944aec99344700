import type { DuckDBConnection } from '@duckdb/node-api';
import type { SourceDef } from '../define/types.ts';
import { BadInputError, SKIP_HINT, type BadRowPolicy } from './bad-input.ts';
import { expectedText, isFractional, isInteger, isTemporal, isText, stagedType } from './column-kinds.ts';
import { countRows, ident, lit } from './duck.ts';
import { transformInJs, type PlannedColumn } from './js-pass.ts';
import { describeFile, eventScanSql, fileFormat, type FileFormat } from './scan-sql.ts';
import { sourceFiles } from './source-files.ts';
import { isoPartsSql, textTimeMsSql } from './text-time-sql.ts';

/**
 * A source loaded into the scratch database as clean events.
 *
 * `relation` has columns `__seq DOUBLE` (source order: fileIndex * 2^32 + rowIndexInFile), `__t DOUBLE`
 * (event time, epoch ms), then every schema column and every derived column by name, normalized
 * (strings VARCHAR, booleans BOOLEAN, ints/floats/timestamps DOUBLE with timestamps in epoch ms). Bad rows
 * and rows the source filter rejects are not in it.
 */
export interface StagedSource {
  readonly source: SourceDef;
  readonly files: readonly string[];
  readonly relation: string;
  /** Rows skipped as bad input (only with `onBadRow: 'skip'`). */
  readonly badRows: number;
  /** Rows read from the files, bad ones included. */
  readonly rows: number;
  /** The columns of each file, as the file names them (schema or not). */
  readonly fileColumns: readonly (readonly string[])[];
}

export interface StageOptions {
  /** Directory relative source paths resolve against. */
  readonly baseDir: string;
  /** Read these files instead of the source's own (e.g. a file replayed online); `baseDir` is then unused. */
  readonly files?: readonly string[];
  readonly onBadRow: BadRowPolicy;
  /**
   * Read a nullable schema column (not the time column) a file lacks as null instead of refusing the file,
   * as ingest treats an omitted nullable field (replay of JSONL whose producers omit nulls). The backfill
   * keeps refusing: there a missing column is more likely a renamed header than a column of nulls.
   */
  readonly missingNullableAsNull?: boolean;
  /** Unique prefix for the tables of this source. */
  readonly tableName: string;
  /**
   * Convert text times of the common shapes in SQL (text-time-sql.ts; same epoch ms as `parseEventTime`),
   * so a source without derived columns or filter needs no JS pass when all its times convert. For a replay's
   * one big file: DuckDB plans the conversion once per file (~5 ms per text time column), which a source of
   * many small files would pay per file, and a file with any other shape pays for it and the JS pass.
   */
  readonly textTimesInSql?: boolean;
}

const FILE_STRIDE = 4294967296; // 2^32: seq = fileIndex * 2^32 + rowIndexInFile (ARCHITECTURE decision 3)

/**
 * Reads every file of a source with DuckDB into `relation` (see `StagedSource`): type checks in SQL,
 * time parsing of text (in SQL for the common shapes, text-time-sql.ts), derived columns and the filter in
 * JS only when the source needs them.
 * Throws `BadInputError` for a missing/empty file, a missing column, or (policy `fail`) a bad row.
 *
 * @example
 * const staged = await stageSource(db.conn, charges, { baseDir: repoDir, onBadRow: 'fail', tableName: 'src0' });
 * // SELECT __t, __seq, amount FROM src0_ev ...
 */
export async function stageSource(
  conn: DuckDBConnection,
  source: SourceDef,
  options: StageOptions,
): Promise<StagedSource> {
  const files = options.files ?? (await sourceFiles(source, options.baseDir));
  const names = Object.keys(source.schema);
  if (!(source.timeColumn in source.schema)) {
    throw new Error(
      `Source '${source.name}': time column '${source.timeColumn}' is not in its schema; add it to the schema.`,
    );
  }
  const formats = files.map((f) => fileFormat(source.format, f, source.name));
  const fileTypes: Array<Map<string, string>> = [];
  const fileColumns: string[][] = [];
  const missing: string[][] = [];
  for (let i = 0; i < files.length; i++) {
    const columns = await describeFile(conn, formats[i], files[i], source.name);
    const types = new Map(columns.map((c) => [c.name, formats[i] === 'parquet' ? c.type : 'VARCHAR']));
    missing.push([]);
    for (const name of names) {
      if (!types.has(name)) {
        if (options.missingNullableAsNull && source.schema[name].nullable && name !== source.timeColumn) {
          types.set(name, 'VARCHAR');
          missing[i].push(name);
          continue;
        }
        throw new BadInputError(
          { source: source.name, file: files[i], row: null, column: name },
          `the file has no column '${name}' (it has: ${columns.map((c) => c.name).join(', ') || 'none'})`,
          `add the column to the file, or fix the schema of source '${source.name}'`,
        );
      }
    }
    fileTypes.push(types);
    fileColumns.push(columns.map((c) => c.name));
  }
  const planned: PlannedColumn[] = names.map((name) => {
    const type = source.schema[name].type;
    const textTime = type === 'timestamp' && fileTypes.some((t) => isText(t.get(name)!));
    return { name, type, textTime };
  });

  const raw = `${options.tableName}_raw`;
  const defs = planned.map(
    (c) => `${ident(c.name)} ${c.textTime ? 'VARCHAR' : stagedType(c.type).toString()}`,
  );
  // Without derived columns or a filter (a replay reads sources so), each text time column gets its epoch ms
  // where SQL can compute them (text-time-sql.ts), else NULL, so the JS pass may not be needed at all.
  const jsAnyway = Object.keys(source.derived).length > 0 || source.filter !== undefined;
  const sqlTimes =
    jsAnyway || !options.textTimesInSql ? [] : [...planned.keys()].filter((j) => planned[j].textTime);
  const fastTimes = sqlTimes.map((j) => `__tms${j} DOUBLE`);
  await conn.run(
    `CREATE OR REPLACE TABLE ${ident(raw)} (__file INTEGER, ${defs.join(', ')}, __bad VARCHAR, __badv VARCHAR${fastTimes.map((d) => `, ${d}`).join('')})`,
  );
  const starts: number[] = [];
  let total = 0;
  for (let i = 0; i < files.length; i++) {
    starts.push(total);
    let scan = eventScanSql(formats[i], files[i], names);
    // JSONL reads the columns it is given (null where a line lacks one); CSV and Parquet get them added.
    if (missing[i].length > 0 && formats[i] !== 'jsonl')
      scan = `(SELECT *, ${missing[i].map((n) => `CAST(NULL AS VARCHAR) AS ${ident(n)}`).join(', ')} FROM ${scan})`;
    const sql = insertSql(raw, i, scan, planned, fileTypes[i], source.timeColumn, sqlTimes);
    let inserted: number;
    try {
      inserted = (await conn.run(sql)).rowsChanged;
    } catch (error) {
      throw readError(source.name, files[i], formats[i], error);
    }
    if (inserted === 0) {
      throw new BadInputError(
        { source: source.name, file: files[i], row: null, column: null },
        'the file has no rows',
        'remove the empty file or regenerate it',
      );
    }
    total += inserted;
  }

  const locate = (rowid: number) => {
    let f = starts.length - 1;
    while (starts[f] > rowid) f--;
    return { file: files[f], row: rowid - starts[f] + 1 };
  };
  let badRows = 0;
  if (options.onBadRow === 'fail') {
    const bad = await conn.runAndReadAll(
      `SELECT rowid::DOUBLE, __bad, __badv FROM ${ident(raw)} WHERE __bad IS NOT NULL ORDER BY rowid LIMIT 1`,
    );
    if (bad.currentRowCount > 0) {
      const [rowid, column, value] = bad.getRows()[0] as [number, string, string | null];
      const type = source.schema[column].type;
      throw new BadInputError(
        { source: source.name, ...locate(rowid), column },
        value === null
          ? 'the event time is null'
          : `value ${JSON.stringify(value)} is not ${expectedText(type)}`,
        SKIP_HINT,
      );
    }
  } else {
    const counted = await conn.runAndReadAll(
      `SELECT count(*)::DOUBLE FROM ${ident(raw)} WHERE __bad IS NOT NULL`,
    );
    badRows = counted.getRows()[0][0] as number;
  }

  const relation = `${options.tableName}_ev`;
  const seqSql = `(__file::DOUBLE * ${FILE_STRIDE} + rowid::DOUBLE - ([${starts.join(', ')}])[__file + 1])`;
  // Text times all converted in SQL (the same epoch ms as `parseEventTime`) need no JS pass of their own.
  let textTimesLeft = planned.some((c) => c.textTime);
  if (sqlTimes.length > 0) {
    const left = sqlTimes.map((j) => `(${ident(planned[j].name)} IS NOT NULL AND __tms${j} IS NULL)`);
    textTimesLeft =
      (await countRows(conn, `${ident(raw)} WHERE __bad IS NULL AND (${left.join(' OR ')})`)) > 0;
  }
  const needsJs = textTimesLeft || jsAnyway;
  if (!needsJs) {
    const col = (c: PlannedColumn, j: number) =>
      c.textTime ? `__tms${j} AS ${ident(c.name)}` : ident(c.name);
    const cols = planned.map(col).join(', ');
    const t = planned.findIndex((c) => c.name === source.timeColumn);
    await conn.run(
      `CREATE OR REPLACE VIEW ${ident(relation)} AS SELECT ${seqSql} AS __seq, ${planned[t].textTime ? `__tms${t}` : ident(source.timeColumn)} AS __t, ${cols} ` +
        `FROM ${ident(raw)} WHERE __bad IS NULL`,
    );
    return { source, files, relation, badRows, rows: total, fileColumns };
  }
  badRows += await transformInJs(conn, source, planned, raw, seqSql, relation, options.onBadRow, (seq) => {
    const file = Math.floor(seq / FILE_STRIDE);
    return { file: files[file], row: seq - file * FILE_STRIDE + 1 };
  });
  return { source, files, relation, badRows, rows: total, fileColumns };
}

/** INSERT of one file: typed values plus the first bad column (and its raw text) per row. */
function insertSql(
  raw: string,
  fileIndex: number,
  scan: string,
  planned: readonly PlannedColumn[],
  types: ReadonlyMap<string, string>,
  timeColumn: string,
  /** Indexes of the text time columns to convert in SQL too, into `__tms<index>`. */
  sqlTimes: readonly number[],
): string {
  const inner = planned.flatMap((c, j) => [
    `${ident(c.name)} AS __r${j}`,
    `${valueSql(ident(c.name), c, types.get(c.name)!)} AS __v${j}`,
  ]);
  // The time column is checked first: without a time the row cannot be an event at all.
  const order = [...planned.keys()].sort(
    (a, b) => Number(planned[b].name === timeColumn) - Number(planned[a].name === timeColumn),
  );
  const checks = order
    .map((j) => {
      const c = planned[j];
      const cond =
        c.name === timeColumn
          ? `__r${j} IS NULL OR __v${j} IS NULL`
          : c.type === 'string'
            ? null
            : `__r${j} IS NOT NULL AND __v${j} IS NULL`;
      return cond === null ? null : { j, cond };
    })
    .filter((x) => x !== null);
  const bad =
    checks.length === 0
      ? 'NULL'
      : `CASE ${checks.map((x) => `WHEN ${x.cond} THEN ${lit(planned[x.j].name)}`).join(' ')} END`;
  const badv =
    checks.length === 0
      ? 'NULL'
      : `CASE ${checks.map((x) => `WHEN ${x.cond} THEN CAST(__r${x.j} AS VARCHAR)`).join(' ')} END`;
  const values = planned.map((_, j) => `__v${j}`).join(', ');
  const fast = sqlTimes.map((j) => `, ${textTimeMsSql(`__v${j}`, `__p${j}`)}`).join('');
  // The ISO parts of each text time, once per row, in a layer between the scan and the conversion.
  const parts = sqlTimes.map((j) => `, ${isoPartsSql(`__v${j}`)} AS __p${j}`).join('');
  return `INSERT INTO ${ident(raw)} SELECT ${fileIndex}, ${values}, ${bad}, ${badv}${fast} FROM (SELECT *${parts} FROM (SELECT ${inner.join(', ')} FROM ${scan}))`;
}

/** SQL normalizing one raw column to its staged form; NULL where the raw value does not fit the type. */
function valueSql(r: string, c: PlannedColumn, rawType: string): string {
  const dbl = `TRY_CAST(${r} AS DOUBLE)`;
  switch (c.type) {
    case 'string':
      return `CAST(${r} AS VARCHAR)`;
    case 'float':
      return dbl;
    case 'bool':
      return `TRY_CAST(${r} AS BOOLEAN)`;
    case 'int':
      if (isInteger(rawType)) return `CAST(${r} AS DOUBLE)`;
      // TRY_CAST('1.5' AS BIGINT) rounds, so check integrality on the double instead.
      return `(CASE WHEN isfinite(${dbl}) AND ${dbl} = trunc(${dbl}) THEN ${dbl} END)`;
    case 'timestamp': {
      const ms = isTemporal(rawType)
        ? `CAST(epoch_ms(${r}) AS DOUBLE)`
        : isInteger(rawType)
          ? `CAST(${r} AS DOUBLE)`
          : isFractional(rawType)
            ? `(CASE WHEN ${r} = trunc(${r}) THEN CAST(${r} AS DOUBLE) END)`
            : isText(rawType)
              ? null
              : 'CAST(NULL AS DOUBLE)';
      if (!c.textTime) return ms ?? 'CAST(NULL AS DOUBLE)';
      return ms === null ? `CAST(${r} AS VARCHAR)` : `CAST(CAST(${ms} AS BIGINT) AS VARCHAR)`;
    }
  }
}

function readError(source: string, file: string, format: FileFormat, error: unknown): BadInputError {
  const message = error instanceof Error ? error.message : String(error);
  return new BadInputError(
    { source, file, row: null, column: null },
    `DuckDB could not read it as ${format}: ${message.split('\n')[0]}`,
    `check that the file is valid ${format}`,
    { cause: error },
  );
}
