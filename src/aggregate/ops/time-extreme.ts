import type { OpName, Scalar } from '../../define/types.ts';
import type { AggOp } from '../agg-op.ts';
import { decodeTimed, encodeTimed, isLater, type Timed } from './timed.ts';

/**
 * The one implementation behind `first` and `last`: keep the event that is earliest (`first`) or latest
 * (`last`) by (ts, seq), so ties in ts go by source position. The IR object is updated in place; merge
 * copies fields out of `b` and never keeps it.
 */
export function timeExtremeOp(
  name: OpName,
  keep: 'earliest' | 'latest',
): AggOp<Scalar, Timed | null, Scalar | null> {
  // Whether candidate (ts, seq) should replace the kept event.
  const wins =
    keep === 'latest'
      ? (ts: number, seq: number, kept: Timed) => isLater(ts, seq, kept)
      : (ts: number, seq: number, kept: Timed) => ts < kept.ts || (ts === kept.ts && seq < kept.seq);
  return {
    name,
    init: () => null,
    update(ir, value, ts, seq) {
      if (ir === null) return { ts, seq, value };
      if (wins(ts, seq, ir)) {
        ir.ts = ts;
        ir.seq = seq;
        ir.value = value;
      }
      return ir;
    },
    merge(a, b) {
      if (b === null) return a;
      if (a === null) return { ts: b.ts, seq: b.seq, value: b.value };
      if (wins(b.ts, b.seq, a)) {
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
}
