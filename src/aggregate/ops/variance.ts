import type { AggOp, OpSpec } from '../agg-op.ts';
import { numeric } from './accepts.ts';
import {
  welfordClone,
  welfordDecode,
  welfordEncode,
  welfordInit,
  welfordMerge,
  welfordUpdate,
  welfordVariance,
  type WelfordIr,
} from './welford.ts';

/** variance: population variance (m2 / n) via Welford/Chan; null for an empty window. */
export const varianceOp: AggOp<number, WelfordIr, number | null> = {
  name: 'variance',
  init: welfordInit,
  update: (ir, value) => welfordUpdate(ir, value),
  merge: welfordMerge,
  finalize: (ir) => welfordVariance(ir),
  clone: welfordClone,
  encode: welfordEncode,
  decode: welfordDecode,
};

export const variance: OpSpec = {
  name: 'variance',
  accepts: numeric,
  outputType: () => 'float',
  emptyValue: () => null,
  needs: 'none',
  factory: () => varianceOp,
};
