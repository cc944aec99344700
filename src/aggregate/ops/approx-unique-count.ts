import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import {
  hllAdd,
  hllClone,
  hllDecode,
  hllEncode,
  hllEstimate,
  hllInit,
  hllIsEmpty,
  hllMerge,
  type HllIr,
} from '../sketch/hyperloglog.ts';
import { anyType } from './accepts.ts';

/**
 * approx_unique_count: HyperLogLog with p = 14 (parameters and hash in sketch/hyperloglog.ts), so offline
 * and online give the same integer for the same set of events. An empty window gives null: DESIGN §1 lists
 * only count and unique_count as 0.
 */
export const approxUniqueCountOp: AggOp<Scalar, HllIr, number | null> = {
  name: 'approx_unique_count',
  init: hllInit,
  update: (ir, value) => hllAdd(ir, value),
  merge: hllMerge,
  finalize: (ir) => (hllIsEmpty(ir) ? null : hllEstimate(ir)),
  clone: hllClone,
  encode: hllEncode,
  decode: hllDecode,
  // A hot key's batch delta turns dense, and merging a dense sketch reads all its registers per tile.
  updatePerTile: true,
};

export const approxUniqueCount: OpSpec = {
  name: 'approx_unique_count',
  accepts: anyType,
  outputType: () => 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => approxUniqueCountOp,
};
