import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';

/** count: non-null inputs, or every event when the aggregation has no input column (updated with `true`). */
export const countOp: AggOp<Scalar, number, number> = {
  name: 'count',
  init: () => 0,
  update: (ir) => ir + 1,
  merge: (a, b) => a + b,
  finalize: (ir) => ir,
  clone: (ir) => ir,
  encode: (ir, out) => out.writeVarUint(ir),
  decode: (input) => input.readVarUint(),
};

export const count: OpSpec = {
  name: 'count',
  accepts: anyType,
  outputType: () => 'int',
  emptyValue: () => 0,
  needs: 'none',
  factory: () => countOp,
};
