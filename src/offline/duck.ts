import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** A scratch DuckDB database whose spill files live in a private temp directory, so memory stays bounded. */
export interface ScratchDb {
  readonly conn: DuckDBConnection;
  readonly dir: string;
  close(): void;
}

export interface ScratchDbOptions {
  /** DuckDB memory_limit, e.g. '4GB'. Default: 60% of RAM. */
  readonly memoryLimit?: string;
  /** Worker threads for DuckDB. Default: DuckDB's own (all cores). */
  readonly threads?: number;
  /** Parent directory of the scratch directory. Default: the OS temp directory. */
  readonly tempRoot?: string;
}

/**
 * Opens a scratch database; `close()` removes its spill directory. Staged sources and sorted runs larger
 * than the memory limit spill to disk.
 *
 * @example
 * const db = await openScratchDb({ memoryLimit: '2GB' });
 * try { await db.conn.run('SELECT 1'); } finally { db.close(); }
 */
export async function openScratchDb(options: ScratchDbOptions = {}): Promise<ScratchDb> {
  const dir = mkdtempSync(join(options.tempRoot ?? tmpdir(), 'tessera-backfill-'));
  // Default to 60% of RAM (DuckDB's own default is 80%): the JS heap of the sweep lives beside it.
  const memoryLimit = options.memoryLimit ?? `${Math.floor((totalmem() * 0.6) / 2 ** 20)}MB`;
  const config: Record<string, string> = { temp_directory: join(dir, 'spill'), memory_limit: memoryLimit };
  if (options.threads !== undefined) config.threads = String(options.threads);
  // An in-memory database still spills to temp_directory beyond memory_limit, and unlike a database file it
  // writes no WAL or checkpoints for scratch tables we drop at the end anyway.
  const instance = await DuckDBInstance.create(':memory:', config).catch((error: Error) => {
    rmSync(dir, { recursive: true, force: true });
    // DuckDB says only "Failed to set config" for a memory limit it cannot parse.
    throw options.memoryLimit !== undefined && /config/i.test(error.message)
      ? new Error(
          `--memory-limit '${options.memoryLimit}' is not a size DuckDB accepts (${error.message}); use e.g. 4GB, 512MB or 8GiB`,
          { cause: error },
        )
      : error;
  });
  const conn = await instance.connect();
  instances.set(conn, instance);
  // Source order is part of the semantics (seq breaks ts ties), so inserts must keep file order.
  await conn.run('SET preserve_insertion_order = true');
  let closed = false;
  return {
    conn,
    dir,
    close() {
      if (closed) return;
      closed = true;
      conn.closeSync();
      instance.closeSync();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const instances = new WeakMap<DuckDBConnection, DuckDBInstance>();

/**
 * A second connection to the database of a scratch connection. Appenders must not share the connection of
 * an open streaming result: DuckDB ends the stream when the appender flushes (every 204,800 rows), and the
 * stream then looks finished. @internal
 */
export async function siblingConnection(conn: DuckDBConnection): Promise<DuckDBConnection> {
  const instance = instances.get(conn);
  if (instance === undefined) {
    throw new Error('internal: siblingConnection needs a connection opened by openScratchDb');
  }
  return instance.connect();
}

/** `SELECT count(*)` of a relation or subquery. @internal */
export async function countRows(conn: DuckDBConnection, relation: string): Promise<number> {
  const reader = await conn.runAndReadAll(`SELECT count(*)::DOUBLE FROM ${relation}`);
  return reader.getRows()[0][0] as number;
}

/** Fails loudly if a stream delivered fewer rows than its input holds, instead of writing a short output. */
export function checkStreamed(what: string, got: number, expected: number): void {
  if (got !== expected) {
    throw new Error(
      `internal error: ${what} read ${got} of ${expected} rows (the DuckDB stream ended early)`,
    );
  }
}

/** Quotes an identifier for DuckDB SQL. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a string literal for DuckDB SQL. */
export function lit(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
