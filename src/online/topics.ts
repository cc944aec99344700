import type { GroupByDef, Row, SourceDef } from '../define/types.ts';
import { entityKey } from './entity-key.ts';
import { deriveColumns } from './source-transform.ts';

/**
 * A log topic and the group-bys its workers update.
 *
 * Rule: with one partition, each source has ONE topic named after it and one worker updates every
 * group-by on the source (no write conflicts: a single writer). With P > 1 partitions, every tile must
 * still have exactly one writer, so events are re-keyed at ingest: one topic per distinct key-column list
 * of the source's group-bys, named `<source>.<key1>+<key2>`, partitioned by that entity key; the worker of
 * a partition then owns exactly the entities hashing to it. (The cost is one append per key list.)
 */
export interface Topic {
  readonly name: string;
  readonly source: SourceDef;
  /** Columns whose entity key picks the partition; null for the single-partition topic. */
  readonly keyColumns: readonly string[] | null;
  readonly groupBys: readonly GroupByDef[];
}

/**
 * The topics of a source for a log with `partitions` partitions (see the rule above).
 *
 * @example
 * streamTopics(charges, [byCard, byMerchant], 1); // [{ name: 'charges', keyColumns: null, groupBys: [...] }]
 * streamTopics(charges, [byCard, byMerchant], 4); // 'charges.card_id' and 'charges.merchant_id'
 */
export function streamTopics(
  source: SourceDef,
  groupBys: readonly GroupByDef[],
  partitions: number,
): Topic[] {
  const mine = groupBys.filter((g) => g.source.name === source.name);
  if (partitions === 1) return [{ name: source.name, source, keyColumns: null, groupBys: mine }];
  const byKeys = new Map<string, GroupByDef[]>();
  for (const g of mine) {
    const k = g.keys.join('+');
    byKeys.set(k, [...(byKeys.get(k) ?? []), g]);
  }
  return [...byKeys].map(([k, gs]) => ({
    name: `${source.name}.${k}`,
    source,
    keyColumns: gs[0].keys,
    groupBys: gs,
  }));
}

/**
 * The partition key of an event for a topic. Derived key columns are computed on a copy, so the logged
 * event stays the raw normalized row (workers derive again, after reading).
 */
export function partitionKeyOf(topic: Topic, event: Row): string {
  if (topic.keyColumns === null) return '';
  const needsDerived = topic.keyColumns.some((c) => c in topic.source.derived);
  const row = needsDerived ? { ...event } : event;
  if (needsDerived) deriveColumns(topic.source, row, 'ingest');
  return entityKey(topic.keyColumns.map((c) => row[c])) ?? '';
}
