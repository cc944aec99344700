import type { CommitBatch, OnlineStore } from '../../src/online/store.ts';

/**
 * `store` with `before(n, batch)` run before its n-th commit (from 1), e.g. to fail it or to stop Redis
 * while it is sent; every other method is the store's own.
 *
 * @example
 * const flaky = beforeCommit(store, (n) => { if (n === 1) throw new Error('connection reset'); });
 */
export function beforeCommit(
  store: OnlineStore,
  before: (n: number, batch: CommitBatch) => void | Promise<void>,
): OnlineStore {
  let commits = 0;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'commit')
        return async (batch: CommitBatch) => {
          await before(++commits, batch);
          return target.commit(batch);
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
