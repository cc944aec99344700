import type { FastifyInstance } from 'fastify';
import type { GroupByDef, JoinDef } from '../define/types.ts';
import type { OnlineStore } from '../online/store.ts';
import { collectUsage } from '../online/usage.ts';
import type { UsageRecorder } from './usage-recorder.ts';

/**
 * `GET /v1/usage`: the usage report (online/usage.ts) as JSON. It flushes this node's pending fetch counts
 * first, so a report right after a fetch includes it; other nodes' counts appear after their next flush.
 * The report scans the store for stored sizes: an admin route, not for the hot path. Token auth applies
 * as on every route (app.ts).
 *
 * @example
 * registerUsageRoute(app, { store, groupBys: repo.groupBys, joins: repo.joins, recorder });
 * // curl -H 'authorization: Bearer $TOKEN' http://127.0.0.1:8080/v1/usage
 */
export function registerUsageRoute(
  app: FastifyInstance,
  opts: {
    readonly store: OnlineStore;
    readonly groupBys: readonly GroupByDef[];
    readonly joins: readonly JoinDef[];
    readonly recorder?: UsageRecorder;
    readonly groupById?: (g: GroupByDef) => string;
  },
): void {
  app.get('/v1/usage', async () => {
    await opts.recorder?.flush();
    return collectUsage({
      store: opts.store,
      groupBys: opts.groupBys,
      joins: opts.joins,
      ...(opts.groupById ? { groupById: opts.groupById } : {}),
    });
  });
}
