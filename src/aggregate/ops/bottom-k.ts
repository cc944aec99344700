import type { ColumnType, OpParams, Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { ordered } from './accepts.ts';
import { boundedInsert, boundedMerge, requireK } from './bounded-sorted.ts';
import { compareScalar } from './compare.ts';

/**
 * bottom_k(k): the k smallest values, smallest first (duplicates kept; numbers numerically, strings by code units); an empty window
 * gives null. The IR is the bounded multiset sorted ascending.
 */
export function bottomKOp(k: number): AggOp<Scalar, Scalar[], Scalar[] | null> {
  return {
    name: 'bottom_k',
    init: () => [],
    update(ir, value) {
      boundedInsert(ir, value, k, compareScalar, 'smallest');
      return ir;
    },
    merge: (a, b) => (b.length === 0 ? a : boundedMerge(a, b, k, compareScalar, 'smallest')),
    finalize: (ir) => (ir.length === 0 ? null : ir.slice()),
    clone: (ir) => ir.slice(),
    encode(ir, out) {
      out.writeVarUint(ir.length);
      for (const v of ir) out.writeScalar(v);
    },
    decode(input) {
      const n = input.readVarUint();
      const ir: Scalar[] = new Array(n);
      for (let i = 0; i < n; i++) ir[i] = input.readScalar() as Scalar;
      return ir;
    },
  };
}

export const bottomK: OpSpec = {
  name: 'bottom_k',
  accepts: ordered,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => bottomKOp(requireK('bottom_k', params.k)),
};
