/** The oracle check the online tests share (kept out of fixtures.ts, which the CLI also loads as a repo). */
import { expect } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { byUser, closeTo, naive } from './fixtures.ts';

/**
 * Fetches by_user for every user of `all` (or `users`) just after the newest event, in one read, and
 * compares each with the naive oracle.
 */
export async function expectUsersMatchOracle(
  store: OnlineStore,
  all: readonly Row[],
  users: readonly string[] = [...new Set(all.map((e) => e.user as string))],
): Promise<void> {
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const [values] = await createFetchGroupBys(store)(
    [{ id: groupById(byUser), groupBy: byUser, keys: users }],
    t,
  );
  users.forEach((u, i) => expect(closeTo(values![i]!.values, naive(all, 'by_user', u, t))).toBe(true));
}
