import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openConfiguredStore } from '../online/runtime-config.ts';
import type { OnlineStore } from '../online/store.ts';

/**
 * Read-only commands (`fetch`, `usage`) open the LMDB store under `--data-dir`; opening would create an empty
 * one where none exists, and every key would then read as `missing_key` with no hint that the folder was
 * wrong. Fails with the fix instead.
 *
 * @example
 * requireLmdbStore(o.dataDir, 'fetch'); // throws if <dataDir>/store does not exist
 */
export function requireLmdbStore(dataDir: string, command: string): void {
  const path = join(dataDir, 'store');
  if (existsSync(path)) return;
  throw new Error(
    `no LMDB store at ${path}, so ${command} has nothing to read. Pass --data-dir with the folder that ` +
      `tessera serve, stream or upload used (npm start keeps the fraud example's in examples/fraud/data/online), ` +
      `or --url to ask a running server.`,
  );
}

/**
 * The error of a read-only command's `--url` request: the server's message, plus how to pass a token on a
 * 401 (the server's own hint names the HTTP header, not the CLI option).
 */
export function serverError(url: string, status: number, body: { message?: string }): Error {
  const hint = status === 401 ? ' (pass --token TOKEN or set TESSERA_TOKEN)' : '';
  return new Error(`${url} answered ${status}: ${body.message ?? JSON.stringify(body)}${hint}`);
}

/** The store options of `upload`, `prune` and `usage` (`--store --data-dir --redis --redis-prefix --partitions`). */
export interface CliStoreOptions {
  readonly store: 'lmdb' | 'redis';
  readonly dataDir: string;
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly partitions?: number;
}

/** Opens the online store a command's options name. */
export function openCliStore(o: CliStoreOptions): OnlineStore {
  return openConfiguredStore({
    store: o.store,
    dataDir: o.dataDir,
    ...(o.redis ? { redisUrl: o.redis } : {}),
    ...(o.redisPrefix ? { redisPrefix: o.redisPrefix } : {}),
    ...(o.partitions !== undefined ? { partitions: o.partitions } : {}),
  });
}
