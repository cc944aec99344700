import type { Scalar } from '../../define/types.ts';
import type { ByteReader, ByteWriter } from '../bytes.ts';

/**
 * A value with its event time and source order, for ops ordered by time (first, last, first_k, last_k).
 * `seq` breaks ties in `ts`: the later `seq` counts as later (DESIGN §1, ARCHITECTURE decision 3), so the
 * IR keeps both and any merge order gives the same answer.
 */
export interface Timed {
  ts: number;
  seq: number;
  value: Scalar;
}

/** Orders by (ts, seq) ascending. */
export function compareTimed(a: Timed, b: Timed): number {
  return a.ts - b.ts || a.seq - b.seq;
}

/** Whether (ts, seq) is strictly later than `b`. */
export function isLater(ts: number, seq: number, b: Timed): boolean {
  return ts > b.ts || (ts === b.ts && seq > b.seq);
}

export function encodeTimed(t: Timed, out: ByteWriter): void {
  out.writeNumber(t.ts);
  out.writeNumber(t.seq);
  out.writeScalar(t.value);
}

export function decodeTimed(input: ByteReader): Timed {
  const ts = input.readNumber();
  const seq = input.readNumber();
  const value = input.readScalar();
  if (value === null)
    throw new RangeError('decodeTimed: null value in a timed IR; the tile bytes are corrupt');
  return { ts, seq, value };
}
