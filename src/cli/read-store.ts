import { existsSync } from 'node:fs';
import { join } from 'node:path';

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
