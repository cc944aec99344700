import { BOOLEAN, DOUBLE, VARCHAR, type DuckDBType } from '@duckdb/node-api';
import type { ColumnType, Scalar } from '../define/types.ts';

/**
 * How a logical column is held once staged: strings as VARCHAR, booleans as BOOLEAN, and ints, floats and
 * timestamps (epoch ms) as DOUBLE, because JS numbers are what the aggregation core consumes and DOUBLE
 * reads into JS without BigInt conversions.
 * @internal
 */
export function stagedType(type: ColumnType): DuckDBType {
  if (type === 'string') return VARCHAR;
  if (type === 'bool') return BOOLEAN;
  return DOUBLE;
}

/** DuckDB type names that hold date/time instants. */
export function isTemporal(duckType: string): boolean {
  return /^(TIMESTAMP|DATE)/.test(duckType);
}

/** DuckDB type names of integers. */
export function isInteger(duckType: string): boolean {
  return /^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|UHUGEINT)$/.test(duckType);
}

/** DuckDB type names of non-integer numbers. */
export function isFractional(duckType: string): boolean {
  return /^(DOUBLE|FLOAT|REAL|DECIMAL)/.test(duckType);
}

/** Whether a column of this DuckDB type reads as text (and so needs our parsers). */
export function isText(duckType: string): boolean {
  return duckType === 'VARCHAR' || duckType === 'JSON';
}

/** What a bad value of this logical type was expected to be, for messages. */
export function expectedText(type: ColumnType): string {
  switch (type) {
    case 'int':
      return 'an integer';
    case 'float':
      return 'a number';
    case 'bool':
      return 'a boolean (true/false)';
    case 'timestamp':
      return 'a time (timestamp, integer epoch ms, or ISO-8601 text)';
    case 'string':
      return 'a string';
  }
}

/** Whether a JS value (from a derived column or derivation) has the declared logical type. */
export function fitsType(value: Scalar, type: ColumnType): boolean {
  if (type === 'string') return typeof value === 'string';
  if (type === 'bool') return typeof value === 'boolean';
  if (typeof value !== 'number') return false;
  return type === 'float' || Number.isSafeInteger(value);
}
