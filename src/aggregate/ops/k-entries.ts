import type { Scalar } from '../../define/types.ts';
import type { EntryCodec } from './bounded-k.ts';
import { compareScalar } from './compare.ts';
import { compareTimed, decodeTimed, encodeTimed, type Timed } from './timed.ts';

/** Entries of top_k/bottom_k: the value alone (numbers numerically, strings by code units). */
export const scalarEntry: EntryCodec<Scalar> = {
  make: (value) => value,
  value: (v) => v,
  compare: compareScalar,
  write: (v, out) => out.writeScalar(v),
  read: (input) => input.readScalar() as Scalar,
};

/** Entries of first_k/last_k: (ts, seq, value), ordered by (ts, seq). */
export const timedEntry: EntryCodec<Timed> = {
  make: (value, ts, seq) => ({ ts, seq, value }),
  value: (e) => e.value,
  compare: compareTimed,
  write: encodeTimed,
  read: decodeTimed,
};
