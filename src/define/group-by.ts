import type { AggSpec } from './aggregation-spec.ts';
import { deepFreeze } from './deep-freeze.ts';
import { finishDefinition } from './definition-context.ts';
import type { EventSource, InferRow } from './event-source.ts';
import { checkableColumns } from './normalize-source.ts';
import type { CheckAggs, GroupByFeatures } from './feature-types.ts';
import { IssueCollector, requireSpecObject } from './issues.ts';
import { checkName, quoteList } from './names.ts';
import { normalizeAggregation } from './normalize-aggregation.ts';
import type { AggregationDef, GroupByDef, SourceDef } from './types.ts';

/** A normalized group-by that also carries its key and feature types for inference (`_` is type-only). */
export type GroupBy<
  G extends string = string,
  K extends string = string,
  F = Record<string, unknown>,
> = GroupByDef & {
  readonly name: G;
  readonly _?: { readonly keys: K; readonly features: F };
};

export interface GroupBySpec<
  G extends string,
  Src,
  K extends readonly string[],
  A extends readonly AggSpec[],
> {
  /** Unique group-by name; the first segment of its feature names. */
  readonly name: G;
  readonly source: Src;
  /** Entity key columns of the source, e.g. `['card_id']`. */
  readonly keys: K;
  readonly aggregations: A;
  readonly owner?: string;
  readonly description?: string;
}

/**
 * Declares features aggregated per entity key over windows of a source's events. Returns a frozen
 * `GroupByDef`; throws `TesseraDefinitionError` listing every problem (under `loadRepo`, with the whole repo's).
 *
 * @example
 * export const cardStats = groupBy({
 *   name: 'card_stats', source: charges, keys: ['card_id'],
 *   aggregations: [count({ windows: ['5m', '1h'] }), sum('amount', { windows: ['1d'] })],
 * });
 * // features: card_stats_count_5m, card_stats_count_1h, card_stats_amount_sum_1d
 */
export function groupBy<
  const G extends string,
  Src extends EventSource<string, any>,
  const K extends readonly (keyof InferRow<Src> & string)[],
  const A extends readonly AggSpec[],
>(
  spec: GroupBySpec<G, Src, K, A> & { readonly aggregations: NoInfer<CheckAggs<A, InferRow<Src>>> },
): GroupBy<G, K[number], GroupByFeatures<G, A, InferRow<Src>>> {
  const c = new IssueCollector(`groupBy '${String((spec as { name?: unknown })?.name ?? '?')}'`);
  requireSpecObject(c, spec, 'groupBy', 'name, source, keys, aggregations');
  const def = normalizeGroupBy(spec as unknown as Record<string, unknown>, c);
  // A group-by over a broken source is unusable too, though it has no issue of its own.
  return finishDefinition(deepFreeze(def), c, [['source', def.source]]) as GroupBy<G, K[number], any>;
}

function isSource(value: unknown): value is SourceDef {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'source';
}

function normalizeGroupBy(spec: Record<string, unknown>, c: IssueCollector): GroupByDef {
  checkName(c, ['name'], spec.name, 'group-by name');
  const name = spec.name as string;
  const source = spec.source;
  const columns = checkableColumns(source);
  if (!isSource(source)) {
    c.add(
      'missing_field',
      ['source'],
      'source is not an event source',
      'pass the value returned by eventSource({...})',
    );
  }
  const columnHint = columns ? `use one of ${quoteList(columns.keys())}` : 'fix the source first';

  const keys = Array.isArray(spec.keys) ? (spec.keys as unknown[]) : [];
  if (keys.length === 0) {
    c.add(
      'missing_field',
      ['keys'],
      'keys is missing or empty',
      "list the entity key columns, e.g. keys: ['card_id']",
    );
  }
  keys.forEach((key, i) => {
    if (typeof key !== 'string' || (columns && !columns.has(key))) {
      c.add(
        'unknown_column',
        ['keys', i],
        `key column '${String(key)}' is not in source '${(source as SourceDef)?.name}'`,
        columnHint,
      );
    } else if (keys.indexOf(key) !== i) {
      c.add(
        'duplicate_name',
        ['keys', i],
        `key column '${key}' is listed twice`,
        'list each key column once',
      );
    }
  });

  const rawAggs = Array.isArray(spec.aggregations) ? (spec.aggregations as AggSpec[]) : [];
  if (rawAggs.length === 0) {
    c.add(
      'missing_field',
      ['aggregations'],
      'aggregations is missing or empty',
      "add aggregations, e.g. [count({ windows: ['1h'] })]",
    );
  }
  const aggregations: AggregationDef[] = [];
  const featureNames = new Map<string, string>();
  rawAggs.forEach((agg, i) => {
    const def = normalizeAggregation(agg, name, columns, columnHint, c, ['aggregations', i]);
    if (!def) return;
    aggregations.push(def);
    def.names.forEach((feature, w) => {
      const where = `aggregations[${i}].windows[${w}]`;
      const previous = featureNames.get(feature);
      if (previous !== undefined) {
        c.add(
          'duplicate_name',
          ['aggregations', i],
          `feature '${feature}' is produced by both ${previous} and ${where}`,
          'remove the duplicate or give one of them names: [...]',
        );
      } else featureNames.set(feature, where);
    });
  });

  return {
    kind: 'groupBy',
    name,
    source: source as SourceDef,
    keys: keys as string[],
    aggregations,
    ...(typeof spec.owner === 'string' ? { owner: spec.owner } : {}),
    ...(typeof spec.description === 'string' ? { description: spec.description } : {}),
  };
}
