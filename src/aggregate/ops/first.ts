import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { decodeTimed, encodeTimed, isLater, type Timed } from './timed.ts';

/**
 * first: the value of the earliest event by (ts, seq), so ties in ts go to the later source position.
 * The IR object is updated in place; merge copies fields out of `b` and never keeps it.
 */
export const firstOp: AggOp<Scalar, Timed | null, Scalar | null> = {
  name: 'first',
  init: () => null,
  update(ir, value, ts, seq) {
    if (ir === null) return { ts, seq, value };
    if (ts < ir.ts || (ts === ir.ts && seq < ir.seq)) {
      ir.ts = ts;
      ir.seq = seq;
      ir.value = value;
    }
    return ir;
  },
  merge(a, b) {
    if (b === null) return a;
    if (a === null) return { ts: b.ts, seq: b.seq, value: b.value };
    if (isLater(a.ts, a.seq, b)) {
      a.ts = b.ts;
      a.seq = b.seq;
      a.value = b.value;
    }
    return a;
  },
  finalize: (ir) => (ir === null ? null : ir.value),
  clone: (ir) => (ir === null ? null : { ts: ir.ts, seq: ir.seq, value: ir.value }),
  encode(ir, out) {
    out.writeU8(ir === null ? 0 : 1);
    if (ir !== null) encodeTimed(ir, out);
  },
  decode: (input) => (input.readU8() === 0 ? null : decodeTimed(input)),
};

export const first: OpSpec = {
  name: 'first',
  accepts: anyType,
  outputType: (input) => input ?? 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => firstOp,
};
