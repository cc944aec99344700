import type { AggOp, OpSpec } from '../agg-op.ts';
import { numeric } from './accepts.ts';
import {
  sumClone,
  sumDecode,
  sumEncode,
  sumInit,
  sumMerge,
  sumUpdate,
  sumValue,
  type SumIr,
} from './compensated-sum.ts';

/** sum: exact for integers below 2^53, compensated (Neumaier) for floats; null for an empty window. */
export const sumOp: AggOp<number, SumIr, number | null> = {
  name: 'sum',
  init: sumInit,
  update: (ir, value) => sumUpdate(ir, value),
  merge: sumMerge,
  finalize: (ir) => (ir.n === 0 ? null : sumValue(ir)),
  clone: sumClone,
  encode: sumEncode,
  decode: sumDecode,
};

export const sum: OpSpec = {
  name: 'sum',
  accepts: numeric,
  outputType: (input) => (input === 'int' ? 'int' : 'float'),
  emptyValue: () => null,
  needs: 'none',
  factory: () => sumOp,
};
