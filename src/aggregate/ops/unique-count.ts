import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';

/**
 * unique_count: the exact number of distinct values. Values are compared with JS SameValueZero (a `Set`),
 * so the number 5 read from DuckDB and 5 parsed from JSON are the same value, 0 and -0 are the same, and
 * the string '5' differs from the number 5 (a column has one type, so that only matters on misuse).
 * An empty window gives 0 (DESIGN §1).
 */
export const uniqueCountOp: AggOp<Scalar, Set<Scalar>, number> = {
  name: 'unique_count',
  init: () => new Set(),
  update: (ir, value) => ir.add(value),
  merge(a, b) {
    for (const v of b) a.add(v);
    return a;
  },
  finalize: (ir) => ir.size,
  clone: (ir) => new Set(ir),
  encode(ir, out) {
    out.writeVarUint(ir.size);
    for (const v of ir) out.writeScalar(v);
  },
  decode(input) {
    const n = input.readVarUint();
    const ir = new Set<Scalar>();
    for (let i = 0; i < n; i++) ir.add(input.readScalar() as Scalar);
    return ir;
  },
};

export const uniqueCount: OpSpec = {
  name: 'unique_count',
  accepts: anyType,
  outputType: () => 'int',
  emptyValue: () => 0,
  needs: 'none',
  factory: () => uniqueCountOp,
};
