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
import { opSpecs } from '../aggregate/ops/index.ts';
import type { AggregationDef, ColumnType, GroupByDef } from '../define/types.ts';

/** Output file formats of a backfill. */
export type OutputFormat = 'parquet' | 'csv';

/** How one output column is typed in DuckDB and how a JS feature value converts to it. @internal */
export interface OutputColumn {
  readonly name: string;
  readonly type: DuckDBType;
  /** The JS value's kind, to convert it back (for derivations). */
  readonly kind: ColumnType | 'list' | 'json-text';
  toDuck(value: unknown): DuckDBValue;
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
    return { name, type: VARCHAR, kind: 'json-text', toDuck: (v) => (v === null ? null : JSON.stringify(v)) };
  }
  const element =
    agg.op === 'approx_percentile' ? scalarColumn(name, 'float') : scalarColumn(name, input ?? 'string');
  return {
    name,
    type: LIST(element.type),
    kind: 'list',
    toDuck: (v) => (v === null ? null : listValue((v as unknown[]).map((x) => element.toDuck(x)))),
  };
}

/** A column holding scalar values of a logical type. @internal */
export function scalarColumn(name: string, type: ColumnType): OutputColumn {
  switch (type) {
    case 'int':
    case 'timestamp':
      return {
        name,
        type: BIGINT,
        kind: type,
        toDuck: (v) => (v === null || v === undefined ? null : toBigInt(name, v)),
      };
    case 'float':
      return {
        name,
        type: DOUBLE,
        kind: type,
        toDuck: (v) => (v === null || v === undefined ? null : Number(v)),
      };
    case 'bool':
      return {
        name,
        type: BOOLEAN,
        kind: type,
        toDuck: (v) => (v === null || v === undefined ? null : Boolean(v)),
      };
    case 'string':
      return {
        name,
        type: VARCHAR,
        kind: type,
        toDuck: (v) => (v === null || v === undefined ? null : String(v)),
      };
  }
}

function toBigInt(name: string, value: unknown): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'bigint') return value;
  throw new Error(`Column '${name}': value ${String(value)} is not an integer; declare the column as float.`);
}
