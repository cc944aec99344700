import { DOUBLE, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import { parseEventTime } from '../aggregate/event-time.ts';
import type { JoinDef } from '../define/types.ts';
import { BadInputError, SKIP_HINT, type BadRowLocation, type BadRowPolicy } from './bad-input.ts';
import { ChunkAppender } from './chunk-appender.ts';
import { expectedText, isFractional, isInteger, isTemporal } from './column-kinds.ts';
import { checkStreamed, ident, lit } from './duck.ts';
import { partitionOf, type PartitionSpec } from './partition-hash.ts';
import { describeFile, fileFormat, formatFromExtension, type FileFormat } from './scan-sql.ts';
import { sourceFiles } from './source-files.ts';

/** Table of all left rows, original columns only; its `rowid` is the output order. */
export const LEFT_TABLE = '__left';
/**
 * Table of the left rows to compute: `__rid BIGINT` (rowid in `__left`), `__t DOUBLE` (epoch ms), and the
 * left columns the join's key mappings use, as read.
 */
export const QUERY_TABLE = '__q';

export interface StagedLeft {
  readonly files: readonly string[];
  /** Original left columns, in file order. */
  readonly columns: readonly string[];
  /** Rows in `__q`. */
  readonly rows: number;
  readonly badRows: number;
}

export interface StageLeftOptions {
  readonly onBadRow: BadRowPolicy;
  readonly partition?: PartitionSpec;
}

/**
 * Loads the left file(s) of a backfill: every column kept as read (the time column as text for CSV/JSONL,
 * so the one shared parser reads it), times converted to epoch ms, rows with a bad time failed or skipped,
 * and, for `--partition i/N`, only the rows whose partition key hashes to `i` kept in `__q`.
 *
 * @example
 * const left = await stageLeft(conn, fraudModel, 'data/labels.parquet', process.cwd(), { onBadRow: 'fail' });
 */
export async function stageLeft(
  conn: DuckDBConnection,
  join: JoinDef,
  leftPath: string,
  baseDir: string,
  options: StageLeftOptions,
): Promise<StagedLeft> {
  const name = `${join.name} (left)`;
  const files = await sourceFiles(
    { ...join.left, path: leftPath, baseDir },
    baseDir,
    `Left rows of join '${join.name}'`,
  );
  const timeColumn = join.left.timeColumn;
  const keyColumns = [...new Set(join.parts.flatMap((p) => Object.values(p.keyMapping)))];
  const required = [timeColumn, ...keyColumns];
  let columns: string[] = [];
  let timeType = 'VARCHAR';
  const starts: number[] = [];
  let total = 0;
  for (let i = 0; i < files.length; i++) {
    // `--left` names its own files: their extension says their format. The left source's `format` is about
    // its own `path` (e.g. Parquet event logs), so it only decides for an extension that names none.
    const format = formatFromExtension(files[i]) ?? fileFormat(join.left.format, files[i], name);
    const described = await describeFile(conn, format, files[i], name);
    for (const column of required) {
      if (!described.some((c) => c.name === column)) {
        throw new BadInputError(
          { source: name, file: files[i], row: null, column },
          `the file has no column '${column}' (it has: ${described.map((c) => c.name).join(', ')})`,
          `add the column, or fix the join's key mapping / the left source's time column`,
        );
      }
    }
    const scan = leftScanSql(format, files[i], described, timeColumn);
    if (i === 0) {
      columns = described.map((c) => c.name);
      timeType = format === 'parquet' ? described.find((c) => c.name === timeColumn)!.type : 'VARCHAR';
      await conn.run(`CREATE OR REPLACE TABLE ${LEFT_TABLE} AS SELECT * FROM ${scan} LIMIT 0`);
    }
    starts.push(total);
    const inserted = (await conn.run(`INSERT INTO ${LEFT_TABLE} BY NAME SELECT * FROM ${scan}`)).rowsChanged;
    if (inserted === 0) {
      throw new BadInputError(
        { source: name, file: files[i], row: null, column: null },
        'the file has no rows',
        'pass a left file with at least one row',
      );
    }
    total += inserted;
  }
  const locate = (rowid: number) => {
    let f = starts.length - 1;
    while (starts[f] > rowid) f--;
    return { source: name, file: files[f], row: rowid - starts[f] + 1, column: timeColumn };
  };

  const t = ident(timeColumn);
  const keys = keyColumns.map(ident).join(', ');
  let badRows = 0;
  const numericTime = isTemporal(timeType)
    ? `CAST(epoch_ms(${t}) AS DOUBLE)`
    : isInteger(timeType)
      ? `CAST(${t} AS DOUBLE)`
      : isFractional(timeType)
        ? `(CASE WHEN ${t} = trunc(${t}) THEN CAST(${t} AS DOUBLE) END)`
        : null;
  if (numericTime !== null) {
    await conn.run(
      `CREATE OR REPLACE TABLE ${QUERY_TABLE} AS SELECT rowid AS __rid, ${numericTime} AS __t, ${keys} FROM ${LEFT_TABLE}`,
    );
    const bad = await conn.runAndReadAll(
      `SELECT __rid::DOUBLE, CAST(l.${t} AS VARCHAR) FROM ${QUERY_TABLE} q JOIN ${LEFT_TABLE} l ON l.rowid = q.__rid ` +
        `WHERE q.__t IS NULL ORDER BY __rid`,
    );
    const rows = bad.getRows() as Array<[number, string | null]>;
    if (rows.length > 0 && options.onBadRow === 'fail') throw badTime(locate(rows[0][0]), rows[0][1]);
    badRows = rows.length;
    if (badRows > 0) await conn.run(`DELETE FROM ${QUERY_TABLE} WHERE __t IS NULL`);
  } else {
    const times = await ChunkAppender.create(conn, '__lt', [
      { name: '__rid', type: DOUBLE },
      { name: '__t', type: DOUBLE },
    ]);
    const result = await conn.stream(`SELECT rowid::DOUBLE, CAST(${t} AS VARCHAR) FROM ${LEFT_TABLE}`);
    let read = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) break;
      const [rids, texts] = chunk.getColumns() as [number[], Array<string | null>];
      read += rids.length;
      for (let i = 0; i < rids.length; i++) {
        const ms = parseEventTime(texts[i]);
        if (ms === null) {
          if (options.onBadRow === 'fail') throw badTime(locate(rids[i]), texts[i]);
          badRows++;
          continue;
        }
        times.column(0).push(rids[i]);
        times.column(1).push(ms);
        times.endRow();
      }
    }
    times.close();
    checkStreamed(`left rows of join '${join.name}'`, read, total);
    await conn.run(
      `CREATE OR REPLACE TABLE ${QUERY_TABLE} AS SELECT CAST(lt.__rid AS BIGINT) AS __rid, lt.__t, ${keyColumns
        .map((c) => `l.${ident(c)}`)
        .join(', ')} FROM __lt lt JOIN ${LEFT_TABLE} l ON l.rowid = CAST(lt.__rid AS BIGINT)`,
    );
  }
  if (options.partition !== undefined) await keepPartition(conn, join, options.partition);
  const counted = await conn.runAndReadAll(`SELECT count(*)::DOUBLE FROM ${QUERY_TABLE}`);
  return { files, columns, rows: counted.getRows()[0][0] as number, badRows };
}

function badTime(location: BadRowLocation, value: string | null): BadInputError {
  return new BadInputError(
    location,
    value === null
      ? 'the time is null'
      : `value ${JSON.stringify(value)} is not ${expectedText('timestamp')}`,
    SKIP_HINT,
  );
}

/** Keeps in `__q` only rows whose partition key (first part's mapped columns) hashes to `spec.index`. */
async function keepPartition(conn: DuckDBConnection, join: JoinDef, spec: PartitionSpec): Promise<void> {
  const part = join.parts[0];
  const cols = part.groupBy.keys.map((k) => part.keyMapping[k]);
  const texts = cols.map((c, i) => `CAST(${ident(c)} AS VARCHAR) AS __p${i}`).join(', ');
  const keep = await ChunkAppender.create(
    conn,
    '__pk',
    cols.map((_, i) => ({ name: `__p${i}`, type: VARCHAR })),
  );
  // Open the stream after creating the table: a new statement on the connection ends an open stream.
  const distinct = await conn.stream(`SELECT DISTINCT ${texts} FROM ${QUERY_TABLE}`);
  for (;;) {
    const chunk = await distinct.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    const values = chunk.getColumns() as Array<Array<string | null>>;
    const row: Array<string | null> = new Array(cols.length);
    for (let i = 0; i < chunk.rowCount; i++) {
      for (let j = 0; j < cols.length; j++) row[j] = values[j][i];
      if (partitionOf(row, spec.count) !== spec.index) continue;
      for (let j = 0; j < cols.length; j++) keep.column(j).push(row[j]);
      keep.endRow();
    }
  }
  keep.close();
  const match = cols
    .map((c, i) => `CAST(q.${ident(c)} AS VARCHAR) IS NOT DISTINCT FROM pk.__p${i}`)
    .join(' AND ');
  await conn.run(`DELETE FROM ${QUERY_TABLE} q WHERE NOT EXISTS (SELECT 1 FROM __pk pk WHERE ${match})`);
}

/** Left files are read with detected types (kept in the output), except the time column as text for CSV/JSONL. */
function leftScanSql(
  format: FileFormat,
  file: string,
  described: ReadonlyArray<{ name: string; type: string }>,
  timeColumn: string,
): string {
  if (format === 'parquet') return `read_parquet(${lit(file)})`;
  if (format === 'csv')
    return `read_csv(${lit(file)}, header = true, types = {${lit(timeColumn)}: 'VARCHAR'})`;
  const spec = described
    .map((c) => `${lit(c.name)}: ${lit(c.name === timeColumn ? 'VARCHAR' : c.type)}`)
    .join(', ');
  return `read_json(${lit(file)}, format = 'newline_delimited', columns = {${spec}})`;
}
