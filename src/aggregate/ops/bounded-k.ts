import type { OpName, Scalar } from '../../define/types.ts';
import type { AggOp } from '../agg-op.ts';
import type { ByteReader, ByteWriter } from '../bytes.ts';
import { boundedInsert, boundedMerge, type Keep } from './bounded-sorted.ts';

/** How a k-op stores one entry: the raw value (top_k, bottom_k) or a timed value (first_k, last_k). */
export interface EntryCodec<T> {
  make(value: Scalar, ts: number, seq: number): T;
  value(entry: T): Scalar;
  compare(a: T, b: T): number;
  write(entry: T, out: ByteWriter): void;
  read(input: ByteReader): T;
}

/**
 * The one implementation behind top_k, bottom_k, first_k and last_k: a multiset of at most k entries sorted
 * ascending, keeping the k largest or smallest, so any merge order keeps the same k. Results list the kept
 * extreme first (largest/newest first for `largest`, smallest/oldest first for `smallest`); an empty window
 * gives null. Entries are never mutated, so clones may share them.
 */
export function boundedKOp<T>(
  name: OpName,
  k: number,
  keep: Keep,
  codec: EntryCodec<T>,
): AggOp<Scalar, T[], Scalar[] | null> {
  return {
    name,
    init: () => [],
    update(ir, value, ts, seq) {
      boundedInsert(ir, codec.make(value, ts, seq), k, codec.compare, keep);
      return ir;
    },
    merge: (a, b) => (b.length === 0 ? a : boundedMerge(a, b, k, codec.compare, keep)),
    finalize(ir) {
      if (ir.length === 0) return null;
      const out: Scalar[] = new Array(ir.length);
      const last = ir.length - 1;
      for (let i = 0; i <= last; i++) out[i] = codec.value(ir[keep === 'largest' ? last - i : i]);
      return out;
    },
    clone: (ir) => ir.slice(),
    encode(ir, out) {
      out.writeVarUint(ir.length);
      for (let i = 0; i < ir.length; i++) codec.write(ir[i], out);
    },
    decode(input) {
      const n = input.readVarUint();
      const ir: T[] = new Array(n);
      for (let i = 0; i < n; i++) ir[i] = codec.read(input);
      return ir;
    },
  };
}
