import { welfordOp } from './welford.ts';

/** variance: population variance (m2 / n) via Welford/Chan; null for an empty window. */
export const { op: varianceOp, spec: variance } = welfordOp('variance', (v) => v);
