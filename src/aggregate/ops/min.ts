import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { ordered } from './accepts.ts';
import { compareScalar } from './compare.ts';

/** min: the smallest value (numbers numerically, strings by code units); null for an empty window. */
export const minOp: AggOp<Scalar, Scalar | null, Scalar | null> = {
  name: 'min',
  init: () => null,
  update: (ir, value) => (ir === null || compareScalar(value, ir) < 0 ? value : ir),
  merge: (a, b) => (a === null || (b !== null && compareScalar(b, a) < 0) ? b : a),
  finalize: (ir) => ir,
  clone: (ir) => ir,
  encode: (ir, out) => out.writeScalar(ir),
  decode: (input) => input.readScalar(),
};

export const min: OpSpec = {
  name: 'min',
  accepts: ordered,
  outputType: (input) => input ?? 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => minOp,
};
