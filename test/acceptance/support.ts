/**
 * Acceptance-test support: only the public surface (the CLI binary, files, HTTP). Nothing here imports
 * from src/ except the generated feature repos, which import the package entry point as a user would.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
export { rng } from '../support/rng.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/tessera.js');
/** What a user's definition file imports (the package entry point, by absolute path). */
export const PKG = join(ROOT, 'src/index.ts');

const created: string[] = [];

/** A fresh temp dir, removed by `removeTempDirs()` (set TESSERA_KEEP_TMP=1 to keep it for debugging). */
export function tempDir(prefix = 'tessera-acceptance-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Removes the temp dirs made so far; call from a file's afterAll, after stopping servers that use them. */
export function removeTempDirs(): void {
  if (process.env.TESSERA_KEEP_TMP === '1') return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function writeCsv(path: string, columns: readonly string[], rows: ReadonlyArray<object>): void {
  const lines = rows.map((r) => columns.map((c) => csvCell((r as Record<string, unknown>)[c])).join(','));
  writeFileSync(path, [columns.join(','), ...lines].join('\n') + '\n');
}

export function writeJsonl(path: string, rows: ReadonlyArray<object>): void {
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Runs SQL statements in a throwaway in-memory DuckDB; returns the last statement's rows as plain JS. */
export async function duckRun(...sql: string[]): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const s of sql) rows = (await conn.runAndReadAll(s)).getRowObjects().map(toPlain);
    return rows;
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

/** Reads a backfill output (Parquet or CSV, all CSV cells as text) in file order. */
export async function readOutput(path: string): Promise<Record<string, unknown>[]> {
  const scan = path.endsWith('.csv')
    ? `read_csv('${path}', header = true, all_varchar = true)`
    : `read_parquet('${path}')`;
  return duckRun(`SELECT * FROM ${scan}`);
}

/** Column names and DuckDB types of a Parquet file. */
export async function parquetSchema(path: string): Promise<Array<{ name: string; type: string }>> {
  const rows = await duckRun(`DESCRIBE SELECT * FROM read_parquet('${path}')`);
  return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs `node bin/tessera.js ...args` as a user would (not a TTY). */
export function runCli(args: readonly string[], cwd = ROOT, timeoutMs = 40_000): Promise<CliResult> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A free TCP port on 127.0.0.1 (below the ephemeral range; see test/support/servers.ts). */
export { freePort } from '../support/servers.ts';

/**
 * Compares a produced feature value with the oracle's: integers exactly, floats to a relative 1e-9 of
 * `scale` (the magnitude of the terms, so cancellation in sums is not penalised), arrays elementwise.
 */
export function close(actual: unknown, expected: unknown, scale = 0): boolean {
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (Number.isInteger(expected) && Number.isInteger(actual) && scale === 0) return actual === expected;
    const tol = 1e-9 * Math.max(Math.abs(expected), Math.abs(actual), scale) + 1e-12;
    return Math.abs(actual - expected) <= tol;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    return actual.length === expected.length && expected.every((e, i) => close(actual[i], e, scale));
  }
  if (expected !== null && typeof expected === 'object' && actual !== null && typeof actual === 'object') {
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).sort();
    return (
      ek.length === ak.length &&
      ek.every(
        (k, i) =>
          ak[i] === k &&
          close((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], scale),
      )
    );
  }
  return actual === expected;
}
