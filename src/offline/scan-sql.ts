import type { SourceFormat } from '../define/types.ts';
import { statSync } from 'node:fs';
import type { DuckDBConnection } from '@duckdb/node-api';
import { BadInputError } from './bad-input.ts';
import { lit } from './duck.ts';

/** A concrete file format DuckDB reads. */
export type FileFormat = Exclude<SourceFormat, 'auto'>;

/**
 * The format of a file: the source's declared format, or by extension for `auto`.
 *
 * @example
 * fileFormat('auto', 'data/a.ndjson', 'clicks'); // 'jsonl'
 */
export function fileFormat(format: SourceFormat, file: string, sourceName: string): FileFormat {
  if (format !== 'auto') return format;
  const known = formatFromExtension(file);
  if (known !== null) return known;
  throw new Error(
    `Source '${sourceName}': cannot tell the format of ${file} from its extension. ` +
      `Fix: name it .parquet, .csv or .jsonl, or set format: 'parquet' | 'csv' | 'jsonl' on the source.`,
  );
}

/** The format a file's extension names, or null for an extension that names none. */
export function formatFromExtension(file: string): FileFormat | null {
  const lower = file.toLowerCase();
  if (lower.endsWith('.parquet') || lower.endsWith('.pq')) return 'parquet';
  if (lower.endsWith('.csv') || lower.endsWith('.tsv') || lower.endsWith('.csv.gz')) return 'csv';
  if (
    lower.endsWith('.jsonl') ||
    lower.endsWith('.ndjson') ||
    lower.endsWith('.json') ||
    lower.endsWith('.jsonl.gz')
  )
    return 'jsonl';
  return null;
}

/** A table expression to list a file's columns: Parquet and JSONL with their types, CSV as text. */
function describeScanSql(format: FileFormat, file: string): string {
  if (format === 'parquet') return `read_parquet(${lit(file)})`;
  if (format === 'csv') return `read_csv(${lit(file)}, header = true, all_varchar = true)`;
  return `read_json(${lit(file)}, format = 'newline_delimited', sample_size = -1)`;
}

/**
 * A table expression reading the schema columns of one event file. CSV and JSONL values are read as text
 * so that a bad value becomes a located row-level error (file, row, column) instead of a reader failure;
 * Parquet keeps its own types.
 * @internal
 */
export function eventScanSql(format: FileFormat, file: string, columns: readonly string[]): string {
  if (format === 'parquet') return `read_parquet(${lit(file)})`;
  if (format === 'csv') return `read_csv(${lit(file)}, header = true, all_varchar = true)`;
  const spec = columns.map((c) => `${lit(c)}: 'VARCHAR'`).join(', ');
  return `read_json(${lit(file)}, format = 'newline_delimited', columns = {${spec}})`;
}

/**
 * The columns of a file in file order, with DuckDB type names; the error names the source and file.
 * @internal
 */
export async function describeFile(
  conn: DuckDBConnection,
  format: FileFormat,
  file: string,
  sourceName: string,
): Promise<Array<{ name: string; type: string }>> {
  if (statSync(file).size === 0) {
    throw new BadInputError(
      { source: sourceName, file, row: null, column: null },
      'the file is empty (0 bytes)',
      'remove the empty file or regenerate it',
    );
  }
  try {
    const reader = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${describeScanSql(format, file)}`);
    return reader.getRowObjects().map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new BadInputError(
      { source: sourceName, file, row: null, column: null },
      `cannot read it as ${format}${/empty|no columns/i.test(message) ? ' (the file is empty)' : ''}: ${message.split('\n')[0]}`,
      `check that the file is a non-empty ${format} file with a header row, or fix the source's format`,
      { cause: error },
    );
  }
}
