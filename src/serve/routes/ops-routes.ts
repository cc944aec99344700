import type { FastifyInstance } from 'fastify';
import type { GroupByDef } from '../../define/types.ts';
import type { ServeMetrics } from '../metrics.ts';

/** Pipeline progress of one source, as reported by its stream workers. */
export interface SourceProgress {
  readonly source: string;
  /** Log events appended but not yet applied to tiles. */
  readonly lag: number;
  /** Newest event time (epoch ms) applied to tiles, or null before the first event. */
  readonly watermark: number | null;
  /**
   * Group-bys new to a topic partition, being caught up on the log's events before its worker applies
   * new ones (online/catch-up.ts); their features are `stale` meanwhile. Absent: none.
   */
  readonly catchingUp?: readonly {
    readonly topic: string;
    readonly partition: number;
    readonly groupBys: readonly string[];
    /** Log offsets below this are applied to them; the catch-up ends at `target`. */
    readonly nextOffset: number;
    readonly target: number;
  }[];
  /**
   * Group-bys whose topic partition's log started after the source's earlier events were applied elsewhere
   * (a key list new at --partitions > 1; online/catch-up.ts invariant 6): they lack the events before
   * `since` (epoch ms) unless `tessera upload` covers them. Not `stale`. Absent: none.
   */
  readonly missingHistory?: readonly {
    readonly topic: string;
    readonly partition: number;
    readonly groupBys: readonly string[];
    readonly since: number;
  }[];
}

export interface OpsHooks {
  readonly ready?: () => boolean | Promise<boolean>;
  /** Why the node is unready (e.g. a stream worker stuck failing at one offset), or null. */
  readonly unready?: () => string | null;
  readonly progress?: () => readonly SourceProgress[] | Promise<readonly SourceProgress[]>;
  /** Runs before each scrape, e.g. to copy worker counters into gauges. */
  readonly beforeScrape?: () => void | Promise<void>;
  readonly groupBys: readonly GroupByDef[];
  readonly now?: () => number;
}

/**
 * `/healthz` (process up), `/readyz` (store and workers up; 503 otherwise) and Prometheus `/metrics`.
 * Lag and freshness gauges are refreshed at scrape time so they cost nothing between scrapes.
 */
export function registerOpsRoutes(app: FastifyInstance, metrics: ServeMetrics, hooks: OpsHooks): void {
  const now = hooks.now ?? Date.now;
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const reason = hooks.unready?.() ?? null;
    if (reason !== null) return reply.code(503).send({ status: 'unready', reason });
    const ready = hooks.ready === undefined ? true : await hooks.ready();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'starting' });
  });
  app.get('/metrics', async (_req, reply) => {
    await hooks.beforeScrape?.();
    if (hooks.progress !== undefined) {
      const progress = await hooks.progress();
      const t = now();
      const watermarks = new Map<string, number | null>();
      const catchUpLeft = new Map<string, number>();
      const missingHistory = new Set<string>();
      for (const p of progress) {
        for (const m of p.missingHistory ?? []) for (const name of m.groupBys) missingHistory.add(name);
        metrics.sourceLag.labels(p.source).set(p.lag);
        watermarks.set(p.source, p.watermark);
        for (const c of p.catchingUp ?? [])
          for (const name of c.groupBys)
            catchUpLeft.set(name, (catchUpLeft.get(name) ?? 0) + c.target - c.nextOffset);
      }
      for (const g of hooks.groupBys) {
        metrics.catchUpLeft.labels(g.name).set(catchUpLeft.get(g.name) ?? 0);
        metrics.missingHistory.labels(g.name).set(missingHistory.has(g.name) ? 1 : 0);
      }
      for (const g of hooks.groupBys) {
        const w = watermarks.get(g.source.name);
        // The watermark may run ahead of this clock (workers accept event times up to maxFutureMs, 60 s by
        // default, ahead): that is fresh, 0.
        if (w !== undefined && w !== null)
          metrics.groupByFreshness.labels(g.name).set(Math.max(0, (t - w) / 1000));
      }
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
