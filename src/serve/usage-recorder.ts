import { Counter, type Registry } from 'prom-client';
import type { OnlineStore } from '../online/store.ts';
import {
  CounterBuffer,
  gbCounter,
  joinCounter,
  joinLatencyBucket,
  joinLookups,
  latencyBucket,
} from '../online/usage-counters.ts';
import type { FetchPlan } from './fetch-plan.ts';

/**
 * Counts what fetches cost, per group-by and per join, for `tessera usage` and `/v1/usage`
 * (online/usage.ts), and as Prometheus counters.
 *
 * Invariants:
 * 1. Recording is in memory and O(joins × parts + groups) per request (the per-row slots are summed once);
 *    the store sees one `addCounters` per flush (every `flushMs`, default 5 s, and on `close`), made of
 *    increments, so several serving nodes on one store add up and a restart loses at most one interval.
 * 2. A request's latency is split over its group-bys by their share of the request's `(group-by, key)`
 *    reads, so the group-bys' latency shares add up to the total fetch time.
 */
export interface UsageRecorder {
  /** Records one planned and served request (called by the feature service, see feature-service.ts). */
  recordFetch(plan: FetchPlan, ms: number): void;
  /** Adds the pending counts to the store now. */
  flush(): Promise<void>;
  /** Stops the timer and flushes. */
  close(): Promise<void>;
}

/**
 * @example
 * const usage = createUsageRecorder({ store, registry: metrics.registry });
 * const service = createFeatureService({ ..., onFetch: usage.recordFetch });
 * // ... on shutdown:
 * await usage.close();
 */
export function createUsageRecorder(opts: {
  readonly store: Pick<OnlineStore, 'addCounters'>;
  /** Registers `tessera_groupby_fetches_total` and friends here. */
  readonly registry?: Registry;
  readonly flushMs?: number;
  /** Called when a periodic flush fails (its counts are kept for the next one); default: console.error. */
  readonly onError?: (error: Error) => void;
}): UsageRecorder {
  const buffer = new CounterBuffer();
  const registers = opts.registry ? [opts.registry] : [];
  const gbFetches = new Counter({
    name: 'tessera_groupby_fetches_total',
    help: '(group-by, key) pairs read by fetches, by group-by',
    labelNames: ['group_by'],
    registers,
  });
  const gbSeconds = new Counter({
    name: 'tessera_groupby_fetch_seconds_total',
    help: "Group-by's share of fetch time (a request's time split by its share of the request's reads)",
    labelNames: ['group_by'],
    registers,
  });
  const joinRequests = new Counter({
    name: 'tessera_join_fetch_requests_total',
    help: 'Fetch requests by join (groupby:<name> for direct group-by fetches)',
    labelNames: ['join'],
    registers,
  });
  const joinLookupsTotal = new Counter({
    name: 'tessera_join_lookups_total',
    help: 'Key lookups of a join on a group-by (row x part with a non-null key)',
    labelNames: ['join', 'group_by'],
    registers,
  });

  const reads = new Map<string, { name: string; n: number }>();
  function recordFetch(plan: FetchPlan, ms: number): void {
    const us = ms * 1000;
    // Distinct reads per store id (the fetch primitive reads a (group-by, key) once per request).
    reads.clear();
    let totalReads = 0;
    for (const g of plan.groups) {
      const r = reads.get(g.id);
      if (r === undefined) reads.set(g.id, { name: g.groupBy.name, n: g.keys.length });
      else r.n = Math.max(r.n, g.keys.length); // same id planned twice (different window order): same keys
      totalReads += g.keys.length;
    }
    for (const [id, r] of reads) {
      buffer.add(gbCounter(id, 'fetches'), r.n);
      gbFetches.labels(r.name).inc(r.n);
      if (totalReads > 0) {
        const share = (us * r.n) / totalReads;
        buffer.add(gbCounter(id, 'fetch_us'), share);
        gbSeconds.labels(r.name).inc(share / 1e6);
      }
    }
    for (const pj of plan.joins) {
      const name = pj.join.name;
      buffer.add(joinCounter(name, 'requests'), 1);
      buffer.add(joinCounter(name, 'rows'), pj.slots.length);
      buffer.add(joinCounter(name, 'fetch_us'), us);
      buffer.add(joinLatencyBucket(name, latencyBucket(ms)), 1);
      joinRequests.labels(name).inc();
      for (let p = 0; p < pj.groupOfPart.length; p++) {
        let n = 0;
        for (const rowSlots of pj.slots) if (rowSlots[p]! >= 0) n++;
        if (n === 0) continue;
        const g = plan.groups[pj.groupOfPart[p]!]!;
        buffer.add(joinLookups(name, g.id), n);
        joinLookupsTotal.labels(name, g.groupBy.name).inc(n);
      }
    }
  }

  const onError = opts.onError ?? ((e: Error) => console.error(`tessera usage counters: ${e.message}`));
  let flushing: Promise<void> = Promise.resolve();
  // Flushes run one at a time, so a slow store never sees two overlapping increments of one batch.
  const flush = () => (flushing = flushing.catch(() => {}).then(() => buffer.flushTo(opts.store)));
  const timer = setInterval(() => flush().catch(onError), opts.flushMs ?? 5000);
  timer.unref();

  return {
    recordFetch,
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
