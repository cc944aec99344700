import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';

/**
 * histogram: value as a string (`String(value)`: 5 → '5', true → 'true') → number of events. The result
 * object's keys are inserted in sorted (code unit) order so it serializes the same everywhere (JS objects
 * still list integer-like keys such as '5' first, ascending, by language rule); an empty window gives `{}`.
 */
export const histogramOp: AggOp<Scalar, Map<string, number>, Record<string, number>> = {
  name: 'histogram',
  init: () => new Map(),
  update(ir, value) {
    const key = String(value);
    ir.set(key, (ir.get(key) ?? 0) + 1);
    return ir;
  },
  merge(a, b) {
    b.forEach((n, key) => a.set(key, (a.get(key) ?? 0) + n));
    return a;
  },
  finalize(ir) {
    const keys = [...ir.keys()].sort();
    return Object.fromEntries(keys.map((k) => [k, ir.get(k) as number]));
  },
  clone: (ir) => new Map(ir),
  encode(ir, out) {
    out.writeVarUint(ir.size);
    // `forEach`, not `for of` over entries: no [key, count] array per entry (one per changed tile).
    ir.forEach((n, key) => {
      out.writeString(key);
      out.writeVarUint(n);
    });
  },
  decode(input) {
    const n = input.readVarUint();
    const ir = new Map<string, number>();
    for (let i = 0; i < n; i++) ir.set(input.readString(), input.readVarUint());
    return ir;
  },
};

export const histogram: OpSpec = {
  name: 'histogram',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => ({}),
  needs: 'none',
  factory: () => histogramOp,
};
