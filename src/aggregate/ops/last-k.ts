import type { ColumnType, OpParams, Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { boundedInsert, boundedMerge, requireK } from './bounded-sorted.ts';
import { compareTimed, decodeTimed, encodeTimed, type Timed } from './timed.ts';

function finalizeNewestFirst(ir: readonly Timed[]): Scalar[] {
  const out: Scalar[] = new Array(ir.length);
  for (let i = 0; i < ir.length; i++) out[i] = ir[ir.length - 1 - i].value;
  return out;
}

/**
 * last_k(k): the last k values by (ts, seq), newest first; an empty window gives null. The IR keeps at most k (ts, seq, value) entries sorted
 * ascending by (ts, seq), so any merge order keeps the same k.
 */
export function lastKOp(k: number): AggOp<Scalar, Timed[], Scalar[] | null> {
  return {
    name: 'last_k',
    init: () => [],
    update(ir, value, ts, seq) {
      boundedInsert(ir, { ts, seq, value }, k, compareTimed, 'largest');
      return ir;
    },
    merge: (a, b) => (b.length === 0 ? a : boundedMerge(a, b, k, compareTimed, 'largest')),
    finalize: (ir) => (ir.length === 0 ? null : finalizeNewestFirst(ir)),
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

export const lastK: OpSpec = {
  name: 'last_k',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => lastKOp(requireK('last_k', params.k)),
};
