import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
export { rng } from '../support/rng.ts';

export function tempDir(prefix = 'tessera-offline-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes rows as CSV text (header from the first row's keys; null → empty field). */
export function writeCsv(path: string, columns: readonly string[], rows: ReadonlyArray<object>): void {
  const cell = (v: unknown) =>
    v === null || v === undefined
      ? ''
      : /[",\n]/.test(String(v))
        ? `"${String(v).replaceAll('"', '""')}"`
        : String(v);
  writeFileSync(
    path,
    [
      columns.join(','),
      ...rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])).join(',')),
    ].join('\n') + '\n',
  );
}

export function writeJsonl(path: string, rows: ReadonlyArray<object>): void {
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Runs SQL in a throwaway in-memory DuckDB (used to write Parquet fixtures and read outputs). */
export async function duck<T>(
  fn: (run: (sql: string) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    return await fn(async (sql) => (await conn.runAndReadAll(sql)).getRowObjects().map(toPlain));
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

function toPlain(row: Record<string, DuckDBValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = plain(v);
  return out;
}

function plain(v: DuckDBValue): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v !== null && typeof v === 'object' && 'items' in v) return (v.items as DuckDBValue[]).map(plain);
  return v;
}

/** Reads a backfill output (Parquet or CSV) as plain JS rows in file order. */
export async function readOutput(path: string): Promise<Record<string, unknown>[]> {
  const scan = path.endsWith('.csv')
    ? `read_csv('${path}', header = true, all_varchar = true)`
    : `read_parquet('${path}')`;
  return duck((run) => run(`SELECT * FROM ${scan}`));
}

/** Relative float compare per DESIGN §1 (1e-9), exact otherwise; arrays and objects elementwise. */
export function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isInteger(a) && Number.isInteger(b)) return a === b;
    if (a === b) return true; // ±Infinity, whose difference is NaN
    return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a as object);
    const kb = Object.keys(b as object);
    return ka.length === kb.length && ka.every((k) => same((a as never)[k], (b as never)[k]));
  }
  return a === b;
}
