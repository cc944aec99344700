import { createGroupAggregator } from '../aggregate/group-aggregator.ts';
import type { GroupByDef } from '../define/types.ts';
import type { GroupValues } from './feature-status.ts';

const cache = new WeakMap<GroupByDef, GroupValues>();

/**
 * The values of a group-by for an entity with no events (DESIGN §1: 0 for counts, {} for histogram, else
 * null), with status `missing_key`. Values are fresh per call site only where mutable ({}), so callers may
 * hand them to user derivations safely.
 *
 * @example
 * emptyGroupValues(cardStats).values; // [[0, 0], [null]] for count 1h/1d and sum 1d
 */
export function emptyGroupValues(groupBy: GroupByDef): GroupValues {
  let cached = cache.get(groupBy);
  if (cached === undefined) {
    const agg = createGroupAggregator(groupBy);
    cached = {
      status: 'missing_key',
      values: groupBy.aggregations.map((a, i) => a.windows.map(() => agg.emptyValue(i))),
    };
    cache.set(groupBy, cached);
  }
  const hasObjects = cached.values.some((ws) => ws.some((v) => v !== null && typeof v === 'object'));
  if (!hasObjects) return cached;
  return {
    status: 'missing_key',
    values: cached.values.map((ws) =>
      ws.map((v) => (v !== null && typeof v === 'object' ? structuredClone(v) : v)),
    ),
  };
}
