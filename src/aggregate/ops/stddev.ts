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

const sqrtOrNull = (v: number | null): number | null => (v === null ? null : Math.sqrt(v));

/** stddev: population standard deviation, sqrt of the variance via Welford/Chan; null for an empty window. */
export const stddevOp: AggOp<number, WelfordIr, number | null> = {
  name: 'stddev',
  init: welfordInit,
  update: (ir, value) => welfordUpdate(ir, value),
  merge: welfordMerge,
  finalize: (ir) => sqrtOrNull(welfordVariance(ir)),
  clone: welfordClone,
  encode: welfordEncode,
  decode: welfordDecode,
};

export const stddev: OpSpec = {
  name: 'stddev',
  accepts: numeric,
  outputType: () => 'float',
  emptyValue: () => null,
  needs: 'none',
  factory: () => stddevOp,
};
