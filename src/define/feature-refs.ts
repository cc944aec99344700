import { prefixed } from './join.ts';
import type { FeatureRef, JoinDef } from './types.ts';

/**
 * The aggregate feature columns of a join, resolved to their part, aggregation and window, in the stable
 * output order: parts in order, aggregations in order, windows in order. Derivations follow them in the
 * output (see `featureNames`).
 *
 * @example
 * featureRefs(fraudModel)[0] // { name: 'card_stats_count_5m', partIndex: 0, aggregationIndex: 0, windowIndex: 0 }
 */
export function featureRefs(join: JoinDef): FeatureRef[] {
  const refs: FeatureRef[] = [];
  join.parts.forEach((part, partIndex) => {
    part.groupBy.aggregations.forEach((agg, aggregationIndex) => {
      agg.names.forEach((name, windowIndex) => {
        refs.push(
          Object.freeze({ name: prefixed(part.prefix, name), partIndex, aggregationIndex, windowIndex }),
        );
      });
    });
  });
  return refs;
}

/**
 * Every output feature column of a join in order: the `featureRefs` names, then derivations.
 *
 * @example
 * featureNames(fraudModel) // ['card_stats_count_5m', ..., 'm_merchant_stats_count_1h', ..., 'amount_vs_avg']
 */
export function featureNames(join: JoinDef): string[] {
  return [...featureRefs(join).map((r) => r.name), ...join.derivations.map((d) => d.name)];
}
