import { openLmdbStore } from './lmdb-store.ts';
import { openRedisStore } from './redis-store.ts';
import type { OnlineStore, StoreConfig } from './store.ts';

/**
 * Opens the configured online store.
 *
 * @example
 * const store = openStore({ kind: 'lmdb', path: '.tessera/store' });
 * const redis = openStore({ kind: 'redis', url: 'redis://127.0.0.1:6379' });
 * const cluster = openStore({ kind: 'redis', url: 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000', partitions: 16 });
 */
export function openStore(config: StoreConfig): OnlineStore {
  if (config.kind === 'lmdb') return openLmdbStore(config.path);
  return openRedisStore(config.url, {
    ...(config.prefix !== undefined ? { prefix: config.prefix } : {}),
    ...(config.partitions !== undefined ? { partitions: config.partitions } : {}),
    ...(config.commitChunkEntities !== undefined ? { commitChunkEntities: config.commitChunkEntities } : {}),
    ...(config.commandTimeoutMs !== undefined ? { commandTimeoutMs: config.commandTimeoutMs } : {}),
  });
}
