import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { ordered } from './accepts.ts';
import { compareScalar } from './compare.ts';

/** max: the largest value (numbers numerically, strings by code units); null for an empty window. */
export const maxOp: AggOp<Scalar, Scalar | null, Scalar | null> = {
  name: 'max',
  init: () => null,
  update: (ir, value) => (ir === null || compareScalar(value, ir) > 0 ? value : ir),
  merge: (a, b) => (a === null || (b !== null && compareScalar(b, a) > 0) ? b : a),
  finalize: (ir) => ir,
  clone: (ir) => ir,
  encode: (ir, out) => out.writeScalar(ir),
  decode: (input) => input.readScalar(),
};

export const max: OpSpec = {
  name: 'max',
  accepts: ordered,
  outputType: (input) => input ?? 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => maxOp,
};
