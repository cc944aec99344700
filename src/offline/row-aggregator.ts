import type { Row } from '../define/types.ts';

/**
 * What the sweep needs from an aggregator over several aggregations (one IR per aggregation).
 * `update` and `merge` mutate their first argument only; `finalize` never mutates.
 * @internal
 */
export interface RowAggregator<Ir = unknown> {
  init(): Ir[];
  update(irs: Ir[], row: Row, ts: number, seq: number): void;
  merge(a: Ir[], b: Ir[]): void;
  clone(irs: Ir[]): Ir[];
  finalize(irs: Ir[], aggregationIndex: number): unknown;
  emptyValue(aggregationIndex: number): unknown;
}
