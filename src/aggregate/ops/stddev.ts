import { welfordOp } from './welford.ts';

/** stddev: population standard deviation, sqrt of the Welford/Chan variance; null for an empty window. */
export const { op: stddevOp, spec: stddev } = welfordOp('stddev', Math.sqrt);
