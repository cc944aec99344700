import { createHash } from 'node:crypto';
import type { GroupByDef } from '../define/types.ts';
import { canonicalJson } from '../plan/canonical-json.ts';
import { semanticHash } from '../plan/semantic-hash.ts';

const cache = new WeakMap<GroupByDef, string>();

/**
 * The id under which a group-by's tiles are stored: 16 hex chars (64 bits) of sha256 over its semantic
 * hash plus the order of its keys and aggregations. The semantic hash ignores both orders, but entity keys
 * join key values in declaration order and a tile's IR row is laid out in aggregation order, so two
 * group-bys may share tiles only when those orders match too.
 * Names, owners, docs and window lists do not change it (tiles hold one IR per aggregation, not per window),
 * so equal computations defined by different teams share one set of tiles.
 *
 * @example
 * groupById(cardStats); // '3f9a0c…' (16 hex chars); the store key prefix for card_stats' tiles
 */
export function groupById(groupBy: GroupByDef): string {
  let id = cache.get(groupBy);
  if (id === undefined) {
    const order = [groupBy.keys, groupBy.aggregations.map((a) => [a.op, a.input, a.params])];
    id = createHash('sha256')
      .update(semanticHash(groupBy) + canonicalJson(order))
      .digest('hex')
      .slice(0, 16);
    cache.set(groupBy, id);
  }
  return id;
}
