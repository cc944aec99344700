import type { AggOp, OpSpec } from '../agg-op.ts';
import { numeric } from './accepts.ts';
import {
  sumClone,
  sumDecode,
  sumEncode,
  sumInit,
  sumMerge,
  sumMergeDecoded,
  sumReset,
  sumUpdate,
  sumValue,
  type SumIr,
} from './compensated-sum.ts';

/**
 * avg: sum / count in float64 (DESIGN §1), so ±Infinity when the sum overflows; null for an empty window.
 */
export const avgOp: AggOp<number, SumIr, number | null> = {
  name: 'avg',
  init: sumInit,
  update: (ir, value) => sumUpdate(ir, value),
  merge: sumMerge,
  finalize: (ir) => (ir.n === 0 ? null : sumValue(ir) / ir.n),
  clone: sumClone,
  encode: sumEncode,
  decode: sumDecode,
  mergeDecoded: sumMergeDecoded,
  reset: sumReset,
  updatePerTile: true,
};

export const avg: OpSpec = {
  name: 'avg',
  accepts: numeric,
  outputType: () => 'float',
  emptyValue: () => null,
  needs: 'none',
  factory: () => avgOp,
};
