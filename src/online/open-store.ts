import { openLmdbStore } from './lmdb-store.ts';
import { openRedisStore } from './redis-store.ts';
import type { OnlineStore, StoreConfig } from './store.ts';

/**
 * Opens the configured online store.
 *
 * @example
 * const store = openStore({ kind: 'lmdb', path: '.tessera/store' });
 * const redis = openStore({ kind: 'redis', url: 'redis://127.0.0.1:6379' });
 */
export function openStore(config: StoreConfig): OnlineStore {
  return config.kind === 'lmdb' ? openLmdbStore(config.path) : openRedisStore(config.url, config.prefix);
}
