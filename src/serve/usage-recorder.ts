import { Counter, Gauge, type Registry } from 'prom-client';
import type { OnlineStore } from '../online/store.ts';
import type { WorkerStats } from '../online/worker.ts';
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
 * 1. Recording is in memory, O(joins × parts × rows + groups) per request without string building (1-3 µs
 *    for one row, 4-8 µs for 100 on a loaded 2-core machine: `npx tsx bench/usage-record.ts`);
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
  /**
   * Stats of the stream workers in this process, for the stream CPU and filtered-events gauges (their
   * counters are persisted with the workers' offsets, so they count since the store was created).
   */
  readonly workers?: () => readonly WorkerStats[];
}): UsageRecorder {
  const buffer = new CounterBuffer();

  // Per group-by id and per (join, group-by): counter names built once, and counts not yet handed to
  // Prometheus. prom-client's inc() hashes label sets on every call (~1 µs each), so requests only add to
  // these numbers and a scrape (`collect`) moves them into the Prometheus counters.
  interface GbSlot {
    readonly name: string;
    readonly fetches: string;
    readonly fetchUs: string;
    n: number;
    promFetches: number;
    promUs: number;
  }
  interface PartSlot {
    readonly groupBy: string;
    readonly counter: string;
    promLookups: number;
  }
  interface JoinSlot {
    readonly requests: string;
    readonly rows: string;
    readonly fetchUs: string;
    readonly buckets: Map<number, string>;
    readonly parts: Map<string, PartSlot>;
    promRequests: number;
  }
  const gbSlots = new Map<string, GbSlot>();
  const joinSlots = new Map<string, JoinSlot>();

  const registers = opts.registry ? [opts.registry] : [];
  const byGroupBy = (field: 'cpuMs' | 'filtered') => {
    const out = new Map<string, number>();
    for (const w of opts.workers?.() ?? [])
      for (const [name, c] of Object.entries(w.groupBys)) out.set(name, (out.get(name) ?? 0) + c[field]);
    return out;
  };
  if (opts.workers) {
    new Gauge({
      name: 'tessera_groupby_stream_cpu_seconds',
      help: "Time this process's stream workers spent applying the group-by's events and encoding its tiles",
      labelNames: ['group_by'],
      registers,
      collect() {
        for (const [name, ms] of byGroupBy('cpuMs')) this.set({ group_by: name }, ms / 1000);
      },
    });
    new Gauge({
      name: 'tessera_groupby_events_filtered',
      help: "Events dropped by the source filter before reaching the group-by (this process's workers)",
      labelNames: ['group_by'],
      registers,
      collect() {
        for (const [name, n] of byGroupBy('filtered')) this.set({ group_by: name }, n);
      },
    });
  }
  new Counter({
    name: 'tessera_groupby_fetches_total',
    help: '(group-by, key) pairs read by fetches, by group-by',
    labelNames: ['group_by'],
    registers,
    collect() {
      for (const g of gbSlots.values()) if (g.promFetches > 0) this.inc({ group_by: g.name }, g.promFetches);
      for (const g of gbSlots.values()) g.promFetches = 0;
    },
  });
  new Counter({
    name: 'tessera_groupby_fetch_seconds_total',
    help: "Group-by's share of fetch time (a request's time split by its share of the request's reads)",
    labelNames: ['group_by'],
    registers,
    collect() {
      for (const g of gbSlots.values()) if (g.promUs > 0) this.inc({ group_by: g.name }, g.promUs / 1e6);
      for (const g of gbSlots.values()) g.promUs = 0;
    },
  });
  new Counter({
    name: 'tessera_join_fetch_requests_total',
    help: 'Fetch requests by join (groupby:<name> for direct group-by fetches)',
    labelNames: ['join'],
    registers,
    collect() {
      for (const [join, j] of joinSlots) if (j.promRequests > 0) this.inc({ join }, j.promRequests);
      for (const j of joinSlots.values()) j.promRequests = 0;
    },
  });
  new Counter({
    name: 'tessera_join_lookups_total',
    help: 'Key lookups of a join on a group-by (row x part with a non-null key)',
    labelNames: ['join', 'group_by'],
    registers,
    collect() {
      for (const [join, j] of joinSlots)
        for (const part of j.parts.values()) {
          if (part.promLookups > 0) this.inc({ join, group_by: part.groupBy }, part.promLookups);
          part.promLookups = 0;
        }
    },
  });

  const gbSlot = (id: string, name: string): GbSlot => {
    let slot = gbSlots.get(id);
    if (slot === undefined) {
      slot = {
        name,
        fetches: gbCounter(id, 'fetches'),
        fetchUs: gbCounter(id, 'fetch_us'),
        n: 0,
        promFetches: 0,
        promUs: 0,
      };
      gbSlots.set(id, slot);
    }
    return slot;
  };
  const joinSlot = (name: string): JoinSlot => {
    let slot = joinSlots.get(name);
    if (slot === undefined) {
      slot = {
        requests: joinCounter(name, 'requests'),
        rows: joinCounter(name, 'rows'),
        fetchUs: joinCounter(name, 'fetch_us'),
        buckets: new Map(),
        parts: new Map(),
        promRequests: 0,
      };
      joinSlots.set(name, slot);
    }
    return slot;
  };

  const touched: GbSlot[] = [];
  function record(plan: FetchPlan, ms: number): void {
    const us = ms * 1000;
    // Distinct reads per store id: the fetch primitive reads a (group-by, key) once per request; an id
    // planned twice (same computation, different window order) has the same keys, so count it once.
    touched.length = 0;
    for (const g of plan.groups) {
      if (g.keys.length === 0) continue; // every row's key was null: nothing read
      const slot = gbSlot(g.id, g.groupBy.name);
      if (slot.n === 0) touched.push(slot);
      slot.n = Math.max(slot.n, g.keys.length);
    }
    let totalReads = 0;
    for (const slot of touched) totalReads += slot.n;
    for (const slot of touched) {
      const share = (us * slot.n) / totalReads;
      buffer.add(slot.fetches, slot.n);
      buffer.add(slot.fetchUs, share);
      slot.promFetches += slot.n;
      slot.promUs += share;
      slot.n = 0;
    }
    const bucket = latencyBucket(ms);
    for (const pj of plan.joins) {
      const name = pj.join.name;
      const j = joinSlot(name);
      buffer.add(j.requests, 1);
      buffer.add(j.rows, pj.slots.length);
      buffer.add(j.fetchUs, us);
      let bucketName = j.buckets.get(bucket);
      if (bucketName === undefined) j.buckets.set(bucket, (bucketName = joinLatencyBucket(name, bucket)));
      buffer.add(bucketName, 1);
      j.promRequests++;
      for (let p = 0; p < pj.groupOfPart.length; p++) {
        let n = 0;
        for (const rowSlots of pj.slots) if (rowSlots[p]! >= 0) n++;
        if (n === 0) continue;
        const g = plan.groups[pj.groupOfPart[p]!]!;
        let part = j.parts.get(g.id);
        if (part === undefined)
          j.parts.set(
            g.id,
            (part = { groupBy: g.groupBy.name, counter: joinLookups(name, g.id), promLookups: 0 }),
          );
        buffer.add(part.counter, n);
        part.promLookups += n;
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
    // Accounting must never fail a fetch: a bug here is reported, the response still goes out.
    recordFetch(plan, ms) {
      try {
        record(plan, ms);
      } catch (error) {
        onError(error as Error);
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
