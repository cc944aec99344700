import type { CommitBatch, CommitResult, OnlineStore } from '../../src/online/store.ts';

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
  return aroundCommit(store, async (batch, commit) => {
    await before(++commits, batch);
    return commit(batch);
  });
}

/**
 * `store` whose commits go through `around(batch, commit)`, where `commit` is the store's own (e.g. to apply
 * a commit and then fail it, as a lost reply would); every other method is the store's own.
 *
 * @example
 * const lossy = aroundCommit(store, async (batch, commit) => { await commit(batch); throw new Error('lost'); });
 */
export function aroundCommit(
  store: OnlineStore,
  around: (
    batch: CommitBatch,
    commit: (batch: CommitBatch) => Promise<CommitResult>,
  ) => Promise<CommitResult>,
): OnlineStore {
  const commit = (batch: CommitBatch) => store.commit(batch);
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'commit') return (batch: CommitBatch) => around(batch, commit);
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
