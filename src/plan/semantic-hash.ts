import { createHash } from 'node:crypto';
import type { AggregationDef, GroupByDef, SourceDef } from '../define/types.ts';
import { canonicalCode } from './canonical-code.ts';
import { canonicalJson, type Json } from './canonical-json.ts';

/** Bump when the semantic form changes shape, so old and new hashes never collide by accident. */
const SEMANTIC_VERSION = 2;

/**
 * What determines the events a source yields: files, format, time column, schema, derived-column code (in
 * declaration order, since each may read the ones before it) and filter code. Names and docs are left out.
 */
export function sourceSemantics(source: SourceDef): Json {
  return {
    path: source.path,
    format: source.format,
    timeColumn: source.timeColumn,
    schema: Object.fromEntries(
      Object.entries(source.schema).map(([n, c]) => [n, { type: c.type, nullable: c.nullable }]),
    ),
    derived: Object.entries(source.derived).map(([n, d]) => ({
      name: n,
      type: d.type,
      nullable: d.nullable,
      code: canonicalCode(d.code),
    })),
    filter: source.filterCode === undefined ? null : canonicalCode(source.filterCode),
  };
}

function aggregationSemantics(agg: AggregationDef): Json {
  const windows = agg.windows.map((w) => ({ sizeMs: w.sizeMs, hopMs: w.hopMs }));
  return {
    op: agg.op,
    input: agg.input,
    // Percentile order is kept: it is the order of the output array.
    params: {
      k: agg.params.k,
      percentiles: agg.params.percentiles ? [...agg.params.percentiles] : undefined,
    } as Json,
    windows: sortCanonical(windows),
  };
}

function sortCanonical<T>(items: readonly T[]): T[] {
  return items
    .map((item) => [canonicalJson(item), item] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, item]) => item);
}

/**
 * The canonical form of what determines a group-by's values: source semantics, keys (as a set) and
 * aggregations (op, input, params, windows in ms) as a sorted list. Names, owners and descriptions are
 * excluded, and neither key, aggregation nor window order matters.
 */
export function groupBySemantics(groupBy: GroupByDef): Json {
  return {
    version: SEMANTIC_VERSION,
    source: sourceSemantics(groupBy.source),
    keys: [...groupBy.keys].sort(),
    aggregations: sortCanonical(groupBy.aggregations.map(aggregationSemantics)),
  };
}

/**
 * The semantic hash of a group-by: sha256 (hex) of its canonical semantic form. Equal computations get equal
 * hashes whatever their names, owners, docs or field order; group-bys sharing a hash can share tiles.
 *
 * @example
 * semanticHash(cardStats) // 'c1f0…' (64 hex chars)
 */
export function semanticHash(groupBy: GroupByDef): string {
  return createHash('sha256')
    .update(canonicalJson(groupBySemantics(groupBy)))
    .digest('hex');
}
