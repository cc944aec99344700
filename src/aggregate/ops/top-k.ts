import type { ColumnType, OpParams } from '../../define/types.ts';
import type { OpSpec } from '../agg-op.ts';
import { ordered } from './accepts.ts';
import { boundedKOp } from './bounded-k.ts';
import { requireK } from './bounded-sorted.ts';
import { scalarEntry } from './k-entries.ts';

/** top_k(k): the k largest values, largest first (duplicates kept); an empty window gives null. */
export const topKOp = (k: number) => boundedKOp('top_k', k, 'largest', scalarEntry);

export const topK: OpSpec = {
  name: 'top_k',
  accepts: ordered,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => topKOp(requireK('top_k', params.k)),
};
