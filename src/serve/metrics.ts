import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one serving process. Each server owns its registry so tests can run several. */
export interface ServeMetrics {
  readonly registry: Registry;
  /**
   * Fetch latency in seconds, from the handler's start (body read and parsed) to the response body ready,
   * labelled by join (or `groupby:NAME`, or `multi` for several joins); `fetch` in the Server-Timing header.
   */
  readonly fetchSeconds: Histogram<'join'>;
  /** Rows (entity key sets) served, by join. */
  readonly fetchRows: Counter<'join'>;
  /** Events accepted by ingest, by source; `rate()` of it is events per second. */
  readonly eventsIngested: Counter<'source'>;
  /** Events rejected by ingest validation, by source. */
  readonly eventsRejected: Counter<'source'>;
  /** Log entries appended but not yet applied by workers, by source. */
  readonly sourceLag: Gauge<'source'>;
  /** Seconds since the newest applied event time of the group-by's source (data freshness). */
  readonly groupByFreshness: Gauge<'group_by'>;
  /** Log events a group-by new to its topic still has to catch up on (online/catch-up.ts); 0 when none. */
  readonly catchUpLeft: Gauge<'group_by'>;
  /** 1 while a group-by lacks its source's events before its topic's log started (online/catch-up.ts 6). */
  readonly missingHistory: Gauge<'group_by'>;
  /** Store round trips issued by fetches, (group-by, key) tile sets read in them, and tiles decoded. */
  readonly storeReads: Counter;
  readonly storeKeysRead: Counter;
  readonly tilesDecoded: Counter;
  /** Events applied by stream workers and events too late for retention, by group-by. */
  readonly eventsApplied: Gauge<'group_by'>;
  readonly eventsLate: Gauge<'group_by'>;
  /** Poison events counted and skipped by stream workers (worker.ts invariant 10), by group-by and reason. */
  readonly eventsSkipped: Gauge<'group_by' | 'reason'>;
  /** Failed batches in a row since the worker's last commit (0 while it commits), by topic and partition. */
  readonly workerFailures: Gauge<'topic' | 'partition'>;
  /** Request errors by route and status code. */
  readonly httpErrors: Counter<'route' | 'code'>;
  /** Failed reads of pipeline progress (pipeline-monitor.ts), and the age of the last successful one. */
  readonly progressReadFailures: Counter;
  readonly progressAge: Gauge;
}

/**
 * Creates the serving metrics in a fresh registry.
 *
 * @example
 * const m = createServeMetrics();
 * m.fetchSeconds.labels('fraud_model').observe(0.0008);
 * await m.registry.metrics(); // Prometheus text, including tessera_fetch_seconds_bucket{join="fraud_model",...}
 */
export function createServeMetrics(opts: { defaultMetrics?: boolean } = {}): ServeMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'tessera_process_' });
  const registers = [registry];
  return {
    registry,
    fetchSeconds: new Histogram({
      name: 'tessera_fetch_seconds',
      help: 'Feature fetch latency (request parsed to response body ready) by join',
      labelNames: ['join'],
      // Sub-millisecond buckets: the serving target is about 1 ms.
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    fetchRows: new Counter({
      name: 'tessera_fetch_rows_total',
      help: 'Rows served by join',
      labelNames: ['join'],
      registers,
    }),
    eventsIngested: new Counter({
      name: 'tessera_events_ingested_total',
      help: 'Events accepted by HTTP ingest, by source',
      labelNames: ['source'],
      registers,
    }),
    eventsRejected: new Counter({
      name: 'tessera_events_rejected_total',
      help: 'Events rejected by ingest validation, by source',
      labelNames: ['source'],
      registers,
    }),
    sourceLag: new Gauge({
      name: 'tessera_source_lag_events',
      help: 'Events appended to the log but not yet applied to tiles, by source',
      labelNames: ['source'],
      registers,
    }),
    groupByFreshness: new Gauge({
      name: 'tessera_groupby_freshness_seconds',
      help: "Seconds between now and the newest event time applied to the group-by's tiles (0 when that time is ahead of now)",
      labelNames: ['group_by'],
      registers,
    }),
    missingHistory: new Gauge({
      name: 'tessera_groupby_missing_history',
      help: "1 while a group-by lacks its source's events from before its topic's log started (a key list new at --partitions > 1) and no `tessera upload` covered them; 0 otherwise",
      labelNames: ['group_by'],
      registers,
    }),
    catchUpLeft: new Gauge({
      name: 'tessera_groupby_catch_up_remaining_events',
      help: "Log events a group-by new to its topic (a changed definition) must still be caught up on before its features stop being 'stale' and its topic's worker applies new events; 0 when caught up",
      labelNames: ['group_by'],
      registers,
    }),
    storeReads: new Counter({
      name: 'tessera_store_reads_total',
      help: 'Store round trips issued by fetches',
      registers,
    }),
    storeKeysRead: new Counter({
      name: 'tessera_store_keys_read_total',
      help: '(group-by, entity key) tile sets read from the store by fetches',
      registers,
    }),
    tilesDecoded: new Counter({
      name: 'tessera_tiles_decoded_total',
      help: 'Tiles decoded by fetches',
      registers,
    }),
    eventsApplied: new Gauge({
      name: 'tessera_groupby_events_applied',
      help: 'Events applied to the group-by tiles by stream workers (since the store was created)',
      labelNames: ['group_by'],
      registers,
    }),
    eventsLate: new Gauge({
      name: 'tessera_groupby_events_late_beyond_retention',
      help: 'Events older than tile retention when they arrived: counted, not applied',
      labelNames: ['group_by'],
      registers,
    }),
    eventsSkipped: new Gauge({
      name: 'tessera_groupby_events_skipped',
      help: "Events stream workers counted and skipped because they could never be applied (since the store was created): reason key_too_long (entity key too long for the store) or invalid (not a valid event of the source; counted for every group-by of its topic). Such events come from producers writing to the log directly; the workers' warnings name their offsets",
      labelNames: ['group_by', 'reason'],
      registers,
    }),
    workerFailures: new Gauge({
      name: 'tessera_worker_consecutive_failures',
      help: 'Failed batches in a row since the stream worker last committed (it retries from its committed offset); 0 while it commits',
      labelNames: ['topic', 'partition'],
      registers,
    }),
    httpErrors: new Counter({
      name: 'tessera_http_errors_total',
      help: 'HTTP error responses by route and status code',
      labelNames: ['route', 'code'],
      registers,
    }),
    progressReadFailures: new Counter({
      name: 'tessera_progress_read_failures_total',
      help: "Failed reads of pipeline progress (the log's end offsets; on a --no-workers node, the workers' commits in the store), retried every 100 ms",
      registers,
    }),
    progressAge: new Gauge({
      name: 'tessera_progress_age_seconds',
      help: 'Seconds since pipeline progress was last read successfully: lag and freshness are as of then (about 0.1 while reads succeed)',
      registers,
    }),
  };
}
