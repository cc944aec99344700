import type { ColumnType, OpParams, Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { boundedInsert, boundedMerge, requireK } from './bounded-sorted.ts';
import { compareTimed, decodeTimed, encodeTimed, type Timed } from './timed.ts';

/**
 * first_k(k): the first k values by (ts, seq), oldest first; an empty window gives null. The IR keeps at most k (ts, seq, value) entries sorted
 * ascending by (ts, seq), so any merge order keeps the same k.
 */
export function firstKOp(k: number): AggOp<Scalar, Timed[], Scalar[] | null> {
  return {
    name: 'first_k',
    init: () => [],
    update(ir, value, ts, seq) {
      boundedInsert(ir, { ts, seq, value }, k, compareTimed, 'smallest');
      return ir;
    },
    merge: (a, b) => (b.length === 0 ? a : boundedMerge(a, b, k, compareTimed, 'smallest')),
    finalize: (ir) => (ir.length === 0 ? null : ir.map((e) => e.value)),
    clone: (ir) => ir.slice(),
    encode(ir, out) {
      out.writeVarUint(ir.length);
      for (const e of ir) encodeTimed(e, out);
    },
    decode(input) {
      const n = input.readVarUint();
      const ir: Timed[] = new Array(n);
      for (let i = 0; i < n; i++) ir[i] = decodeTimed(input);
      return ir;
    },
  };
}

export const firstK: OpSpec = {
  name: 'first_k',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => firstKOp(requireK('first_k', params.k)),
};
