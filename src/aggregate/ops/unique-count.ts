import type { Scalar } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import { ByteWriter } from '../bytes.ts';
import { anyType } from './accepts.ts';

/**
 * unique_count: the exact number of distinct values. Values are compared with JS SameValueZero (a `Set`),
 * so the number 5 read from DuckDB and 5 parsed from JSON are the same value, 0 and -0 are the same, and
 * the string '5' differs from the number 5 (a column has one type, so that only matters on misuse).
 * An empty window gives 0 (DESIGN §1).
 */
/**
 * The distinct values: a short array while few (most tiles hold a handful of events; a Set per tile was
 * most of this op's garbage), a Set past SMALL_MAX. Both keep insertion order, which is the encoding's
 * order, so the bytes do not depend on the representation. `includes` compares with SameValueZero like a
 * Set, and -0 is stored as 0 as `Set#add` does.
 */
type Distinct = Scalar[] | Set<Scalar>;

const SMALL_MAX = 8;
/** Sets from this size keep their encoding (see `DistinctSet`). */
const CACHE_MIN = 64;

/**
 * The Set representation, which also keeps the `writeScalar` bytes of its first `encodedCount` values: a
 * hot key's tile (a merchant's distinct cards) is re-encoded at every roll-up with thousands of values
 * and a few new ones, and re-encoding every string was most of its cost. Valid because the IR only ever
 * grows at the end (update, merge and decode add; nothing deletes), so those values stay its first ones.
 */
class DistinctSet extends Set<Scalar> {
  /** Whether this set was encoded before: the cache is built at the second encode (most sets: one or none). */
  encodedOnce = false;
  encoded: ByteWriter | null = null;
  encodedCount = 0;
  /**
   * An iterator positioned after the `encodedCount` values, never run to its end: a Set iterator that is
   * not done also visits values added later, so new values are reached without walking the old ones.
   */
  rest: Iterator<Scalar> | null = null;
}

function addDistinct(ir: Distinct, value: Scalar): Distinct {
  if (!Array.isArray(ir)) return ir.add(value);
  if (ir.includes(value)) return ir;
  if (ir.length < SMALL_MAX) {
    ir.push(value === 0 ? 0 : value);
    return ir;
  }
  const set = new DistinctSet(ir);
  return set.add(value);
}

export const uniqueCountOp: AggOp<Scalar, Distinct, number> = {
  name: 'unique_count',
  init: () => [],
  update: addDistinct,
  merge(a, b) {
    if (!Array.isArray(b)) for (const v of b) a = addDistinct(a, v);
    else for (let i = 0; i < b.length; i++) a = addDistinct(a, b[i]);
    return a;
  },
  finalize: (ir) => (Array.isArray(ir) ? ir.length : ir.size),
  clone: (ir) => (Array.isArray(ir) ? ir.slice() : new DistinctSet(ir)),
  encode(ir, out) {
    if (!Array.isArray(ir)) {
      out.writeVarUint(ir.size);
      if (!(ir instanceof DistinctSet) || ir.size < CACHE_MIN || !ir.encodedOnce) {
        if (ir instanceof DistinctSet) ir.encodedOnce = true;
        for (const v of ir) out.writeScalar(v);
        return;
      }
      const cache = (ir.encoded ??= new ByteWriter(ir.size * 16));
      const rest = (ir.rest ??= ir.values());
      try {
        // Counted once written: a throw must not leave the count ahead of the bytes.
        while (ir.encodedCount < ir.size) {
          cache.writeScalar(rest.next().value as Scalar);
          ir.encodedCount++;
        }
      } catch (error) {
        // The iterator already moved past the value: start the cache over at the next encode.
        ir.encoded = ir.rest = null;
        ir.encodedCount = 0;
        throw error;
      }
      out.writeFrom(cache, 0, cache.length);
      return;
    }
    // An index loop: `for of` over either representation allocated an iterator result per value.
    out.writeVarUint(ir.length);
    for (let i = 0; i < ir.length; i++) out.writeScalar(ir[i]);
  },
  decode(input) {
    const n = input.readVarUint();
    let ir: Distinct = [];
    for (let i = 0; i < n; i++) ir = addDistinct(ir, input.readScalar() as Scalar);
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
