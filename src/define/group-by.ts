import { opSpecs } from '../aggregate/ops/index.ts';
import type { AggSpec } from './aggregation-spec.ts';
import { deepFreeze } from './deep-freeze.ts';
import { sourceColumns, type EventSource, type InferRow } from './event-source.ts';
import type { CheckAggs, GroupByFeatures } from './feature-types.ts';
import { IssueCollector } from './issues.ts';
import { checkName, quoteList } from './names.ts';
import type { AggregationDef, ColumnType, GroupByDef, OpName, SourceDef, WindowDef } from './types.ts';
import { normalizeWindow } from './windows.ts';

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
 * `GroupByDef`; throws `TesseraDefinitionError` listing every problem.
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
  const def = normalizeGroupBy(spec as unknown as Record<string, unknown>, c);
  c.throwIfAny();
  return deepFreeze(def) as GroupBy<G, K[number], any>;
}

function isSource(value: unknown): value is SourceDef {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'source';
}

function normalizeGroupBy(spec: Record<string, unknown>, c: IssueCollector): GroupByDef {
  checkName(c, ['name'], spec.name, 'group-by name');
  const name = spec.name as string;
  const source = spec.source;
  const columns = isSource(source) ? sourceColumns(source) : undefined;
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

function normalizeAggregation(
  agg: AggSpec,
  groupByName: string,
  columns: Map<string, { type: string }> | undefined,
  columnHint: string,
  c: IssueCollector,
  path: (string | number)[],
): AggregationDef | undefined {
  if (typeof agg !== 'object' || agg === null || agg.kind !== 'aggSpec') {
    c.add(
      'invalid_value',
      path,
      'is not an aggregation',
      'use a helper such as count(...), sum(...), lastK(...)',
    );
    return undefined;
  }
  const spec = opSpecs[agg.op as OpName];
  const before = c.issues.length;
  if (!spec) {
    c.add(
      'invalid_value',
      [...path, 'op'],
      `unknown op '${agg.op}'`,
      'use a helper such as count(...), sum(...), lastK(...)',
    );
    return undefined;
  }
  const input = agg.input;
  if (input === null && agg.op !== 'count') {
    c.add(
      'missing_field',
      [...path, 'input'],
      `${agg.op} needs an input column`,
      `pass the column first, e.g. ${agg.op}('amount', {...})`,
    );
  } else if (input !== null) {
    const column = columns?.get(input);
    if (columns && !column) {
      c.add(
        'unknown_column',
        [...path, 'input'],
        `${agg.op} input column '${input}' is not in the source`,
        columnHint,
      );
    } else if (column && !spec.accepts(column.type as never)) {
      const accepted = COLUMN_TYPES.filter((t) => spec.accepts(t)).join(', ');
      c.add(
        'op_type_mismatch',
        [...path, 'input'],
        `${agg.op} cannot aggregate '${input}' of type ${column.type}`,
        `${agg.op} takes ${accepted} columns: use one of those, or add a derived column to the source (derive: {...})`,
      );
    }
  }
  checkParams(agg, spec.needs, c, path);

  const windows: WindowDef[] = [];
  const rawWindows = Array.isArray(agg.windows) ? agg.windows : [];
  if (rawWindows.length === 0) {
    c.add(
      'missing_field',
      [...path, 'windows'],
      'windows is missing or empty',
      "list at least one window, e.g. windows: ['1h', '1d']",
    );
  }
  rawWindows.forEach((input, w) => {
    const window = normalizeWindow(input, c, [...path, 'windows', w]);
    if (!window) return;
    const twin = windows.findIndex((o) => o.sizeMs === window.sizeMs && o.hopMs === window.hopMs);
    if (twin >= 0) {
      c.add(
        'duplicate_window',
        [...path, 'windows', w],
        `window '${window.label}' is the same as '${windows[twin]!.label}'`,
        'remove one of the two windows',
      );
    }
    windows.push(window);
  });

  let names: string[];
  if (agg.names !== undefined) {
    names = [...agg.names];
    if (names.length !== rawWindows.length) {
      c.add(
        'invalid_value',
        [...path, 'names'],
        `names has ${names.length} ${names.length === 1 ? 'name' : 'names'} for ${rawWindows.length} windows`,
        'give exactly one name per window, in window order',
      );
    }
    names.forEach((n, j) => checkName(c, [...path, 'names', j], n, 'feature name'));
  } else {
    const inputPart = input === null ? '' : `${input}_`;
    names = windows.map((w) => `${groupByName}_${inputPart}${agg.op}_${w.label}`);
  }
  if (c.issues.length > before) return undefined;
  return { kind: 'aggregation', op: agg.op, input, params: agg.params, windows, names };
}

const MAX_K = 10_000;
const COLUMN_TYPES: readonly ColumnType[] = ['string', 'int', 'float', 'bool', 'timestamp'];

function checkParams(
  agg: AggSpec,
  needs: 'none' | 'k' | 'percentiles',
  c: IssueCollector,
  path: (string | number)[],
): void {
  if (needs === 'k') {
    const k = agg.params.k;
    if (k === undefined) {
      c.add('bad_param', [...path, 'k'], `${agg.op} needs k`, `set k, e.g. { k: 5, windows: [...] }`);
    } else if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
      c.add('bad_param', [...path, 'k'], `k = ${k} is out of range`, `use a whole number from 1 to ${MAX_K}`);
    }
  } else if (needs === 'percentiles') {
    const ps = agg.params.percentiles;
    if (!Array.isArray(ps) || ps.length === 0) {
      c.add(
        'bad_param',
        [...path, 'percentiles'],
        `${agg.op} needs percentiles`,
        'set percentiles, e.g. { percentiles: [0.5, 0.95], windows: [...] }',
      );
    } else {
      ps.forEach((p, j) => {
        if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
          c.add(
            'bad_param',
            [...path, 'percentiles', j],
            `percentile ${p} is outside [0, 1]`,
            'write percentiles as fractions, e.g. 0.95 for p95',
          );
        } else if (ps.indexOf(p) !== j) {
          c.add(
            'bad_param',
            [...path, 'percentiles', j],
            `percentile ${p} is listed twice`,
            'list each percentile once',
          );
        }
      });
    }
  }
}
