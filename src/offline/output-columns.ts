import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  LIST,
  VARCHAR,
  listValue,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { outputJson } from '../aggregate/ops/float-json.ts';
import { opSpecs } from '../aggregate/ops/index.ts';
import type { AggregationDef, ColumnType, GroupByDef } from '../define/types.ts';

/** Output file formats of a backfill. */
export type OutputFormat = 'parquet' | 'csv';

/** How one output column is typed in DuckDB and how a JS feature value converts to it. @internal */
export interface OutputColumn {
  readonly name: string;
  /** The type in the output file. */
  readonly type: DuckDBType;
  /**
   * The type in the scratch result tables, which `toDuck` converts to; the output casts it to `type`.
   * Int results are DOUBLE there (exact: they are checked to be safe integers): a JS number goes in as it
   * is, where BIGINT needs a BigInt per value, millions of short-lived objects per backfill.
   */
  readonly stagedType: DuckDBType;
  /** The JS value's kind, to convert it back (for derivations). */
  readonly kind: ColumnType | 'list' | 'json-text';
  toDuck(value: unknown): DuckDBValue;
}

/** SQL reading column `sql` of a result table as the output type of `column`. @internal */
export function outputSql(column: OutputColumn, sql: string): string {
  return column.stagedType === column.type ? sql : `CAST(${sql} AS ${column.type.toString()})`;
}

/**
 * Output column types (documented in the README's backfill section):
 * - int results (count, unique_count, approx_unique_count, sum/min/max/first/last of ints) → BIGINT;
 *   float results → DOUBLE; strings → VARCHAR; booleans → BOOLEAN; timestamps → BIGINT epoch ms.
 * - array results (first_k, last_k, top_k, bottom_k, approx_percentile) → LIST in Parquet, JSON text in CSV.
 * - histogram → JSON text (an object of value → count, keys sorted).
 * @internal
 */
export function featureColumn(
  name: string,
  groupBy: GroupByDef,
  agg: AggregationDef,
  format: OutputFormat,
): OutputColumn {
  const input =
    agg.input === null ? null : (groupBy.source.schema[agg.input] ?? groupBy.source.derived[agg.input]).type;
  const out = opSpecs[agg.op].outputType(input);
  if (out !== 'json') return scalarColumn(name, out);
  if (agg.op === 'histogram' || format === 'csv') {
    return {
      name,
      type: VARCHAR,
      stagedType: VARCHAR,
      kind: 'json-text',
      toDuck: (v) => (v === null ? null : outputJson(v)),
    };
  }
  const element = outputScalar(name, agg.op === 'approx_percentile' ? 'float' : (input ?? 'string'));
  const type = LIST(element.type);
  return {
    name,
    type,
    stagedType: type,
    kind: 'list',
    toDuck: (v) => (v === null ? null : listValue((v as unknown[]).map((x) => element.toDuck(x)))),
  };
}

/** A column holding scalar values of a logical type. @internal */
export function scalarColumn(name: string, type: ColumnType): OutputColumn {
  const out = outputScalar(name, type);
  if (out.type !== BIGINT) return { name, ...out, stagedType: out.type, kind: type };
  return {
    name,
    type: BIGINT,
    stagedType: DOUBLE,
    kind: type,
    toDuck: (v) => (v === null || v === undefined ? null : checkInteger(name, v)),
  };
}

/** The output type of a scalar and the conversion of a JS value to it. */
function outputScalar(
  name: string,
  type: ColumnType,
): { type: DuckDBType; toDuck(value: unknown): DuckDBValue } {
  switch (type) {
    case 'int':
    case 'timestamp':
      return { type: BIGINT, toDuck: (v) => (v === null || v === undefined ? null : toBigInt(name, v)) };
    case 'float':
      // As computed: DOUBLE holds ±Infinity and NaN (online JSON writes them as ±1e999 and null).
      return { type: DOUBLE, toDuck: (v) => (v === null || v === undefined ? null : Number(v)) };
    case 'bool':
      return { type: BOOLEAN, toDuck: (v) => (v === null || v === undefined ? null : Boolean(v)) };
    case 'string':
      return { type: VARCHAR, toDuck: (v) => (v === null || v === undefined ? null : String(v)) };
  }
}

/** An int as a JS number for a DOUBLE staging column, exact since only safe integers pass. */
function checkInteger(name: string, value: unknown): number {
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n === 'number' && Number.isSafeInteger(n)) return n;
  if (typeof value !== 'bigint') toBigInt(name, value); // throws: not an integer
  throw new Error(`Column '${name}': value ${String(value)} is beyond the exact integer range (±2^53).`);
}

function toBigInt(name: string, value: unknown): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'bigint') return value;
  throw new Error(`Column '${name}': value ${String(value)} is not an integer; declare the column as float.`);
}
