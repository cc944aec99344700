import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';

/**
 * histogram: value as a string (`String(value)`: 5 → '5', true → 'true') → number of events. The result
 * object's keys are inserted in sorted (code unit) order so it serializes the same everywhere (JS objects
 * still list integer-like keys such as '5' first, ascending, by language rule); an empty window gives `{}`.
 */
/**
 * Counts by key: a flat array `[key, count, key, count, …]` while few keys (most tiles hold a handful of
 * events; a Map per tile was most of this op's garbage), a Map past SMALL_MAX keys. Both keep insertion
 * order, which is the encoding's, so the bytes do not depend on the representation.
 */
type Counts = (string | number)[] | Map<string, number>;

const SMALL_MAX = 8;

/** `ir` with `key`'s count raised by `n` (`replace`: set to `n`, as decoding a Map entry does). */
function addCount(ir: Counts, key: string, n: number, replace: boolean): Counts {
  if (!Array.isArray(ir)) return ir.set(key, replace ? n : (ir.get(key) ?? 0) + n);
  for (let i = 0; i < ir.length; i += 2) {
    if (ir[i] === key) {
      ir[i + 1] = replace ? n : (ir[i + 1] as number) + n;
      return ir;
    }
  }
  if (ir.length < 2 * SMALL_MAX) {
    ir.push(key, n);
    return ir;
  }
  return toMap(ir).set(key, n);
}

export const histogramOp: AggOp<Scalar, Counts, Record<string, number>> = {
  name: 'histogram',
  init: () => [],
  update: (ir, value) => addCount(ir, String(value), 1, false),
  merge(a, b) {
    if (!Array.isArray(b)) b.forEach((n, key) => (a = addCount(a, key, n, false)));
    else for (let i = 0; i < b.length; i += 2) a = addCount(a, b[i] as string, b[i + 1] as number, false);
    return a;
  },
  finalize(ir) {
    const map = Array.isArray(ir) ? toMap(ir) : ir;
    const keys = [...map.keys()].sort();
    return Object.fromEntries(keys.map((k) => [k, map.get(k) as number]));
  },
  clone: (ir) => (Array.isArray(ir) ? ir.slice() : new Map(ir)),
  encode(ir, out) {
    if (Array.isArray(ir)) {
      out.writeVarUint(ir.length / 2);
      for (let i = 0; i < ir.length; i += 2) {
        out.writeString(ir[i] as string);
        out.writeVarUint(ir[i + 1] as number);
      }
      return;
    }
    out.writeVarUint(ir.size);
    // `forEach`, not `for of` over entries: no [key, count] array per entry (one per changed tile).
    ir.forEach((n, key) => {
      out.writeString(key);
      out.writeVarUint(n);
    });
  },
  decode(input) {
    const n = input.readVarUint();
    let ir: Counts = [];
    for (let i = 0; i < n; i++) ir = addCount(ir, input.readString(), input.readVarUint(), true);
    return ir;
  },
};

/** The counts of a small histogram as a Map. */
function toMap(ir: readonly (string | number)[]): Map<string, number> {
  const map = new Map<string, number>();
  for (let i = 0; i < ir.length; i += 2) map.set(ir[i] as string, ir[i + 1] as number);
  return map;
}

export const histogram: OpSpec = {
  name: 'histogram',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => ({}),
  needs: 'none',
  factory: () => histogramOp,
};
