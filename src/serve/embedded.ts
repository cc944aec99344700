import type { FastifyInstance } from 'fastify';
import { createFetchGroupBys, emptyGroupValues, type FetchCounters } from '../online/fetch-group-bys.ts';
import { groupById } from '../online/group-by-id.ts';
import { EventValidationError, ingestEvents } from '../online/ingest.ts';
import type { UnknownColumns } from '../online/validate-event.ts';
import { LogUnavailableError } from '../online/log/log-unavailable.ts';
import type { EventLog } from '../online/log/event-log.ts';
import { openConfiguredLog, openConfiguredStore, type LogKind } from '../online/runtime-config.ts';
import type { OnlineStore } from '../online/store.ts';
import { LogWriterLockedError } from '../online/log/file-log.ts';
import {
  planStreamWorkers,
  startStreamWorkers,
  type RunningWorkers,
  type WorkerSlot,
} from '../online/stream-runner.ts';
import { defaultThreadCount, startWorkerThreads, type WorkerThreads } from '../online/worker-threads.ts';
import { createServeApp } from './app.ts';
import { createFeatureService, type FeatureService, type ServedRepo } from './feature-service.ts';
import { createServeMetrics, type ServeMetrics } from './metrics.ts';
import { committedProgress, type CommittedProgress } from './committed-progress.ts';
import { monitorPipeline, type MonitoredWorker } from './pipeline-monitor.ts';
import type { SourceProgress } from './routes/ops-routes.ts';
import { createUsageRecorder, type UsageRecorder } from './usage-recorder.ts';
import { registerUsageRoute } from './usage-route.ts';
import { watchStoreHealth } from './store-health.ts';
import { oversizeKeyIssues } from './key-size-check.ts';
import { isUnavailable, MAX_RETRY_MS, retryStart, type StartRetry } from './worker-start.ts';

export interface EmbeddedOptions {
  /** The definitions; `dir` (set by loadRepo) is where worker threads load them from. */
  readonly repo: ServedRepo & { readonly dir?: string };
  /** Where the LMDB store and the file log live (default `.tessera` in the cwd). */
  readonly dataDir?: string;
  readonly store?: 'lmdb' | 'redis';
  readonly log?: LogKind;
  /** NATS server for `log: 'nats'` (default env NATS_URL or nats://127.0.0.1:4222). */
  readonly natsUrl?: string;
  /** Kafka brokers (host:port) for `log: 'kafka'` (default env KAFKA_BROKERS or 127.0.0.1:9092). */
  readonly kafkaBrokers?: readonly string[];
  /** Redis URL for `store: 'redis'` and/or `log: 'redis'` (default env REDIS_URL or redis://127.0.0.1:6379). */
  readonly redisUrl?: string;
  /** Key prefix in Redis, so several deployments can share one server. */
  readonly redisPrefix?: string;
  /** Log partitions (default 1: one topic per source, one worker each). */
  readonly partitions?: number;
  /** Run stream workers in this process (default true). */
  readonly workers?: boolean;
  /**
   * Where the stream workers run: a number of worker threads, `true` for `defaultThreadCount` (one per
   * worker, at most one per core besides the serving thread), or `false`/0 for the serving thread itself.
   * Default: threads when `repo.dir` is set (threads load the definitions from that folder), else the
   * serving thread. On the serving thread, a worker catching up stalls fetches for up to the length of its
   * synchronous steps (its commit: hundreds of ms per 50k-event batch, the default batch there,
   * `SERVING_THREAD_BATCH_SIZE`); in threads, serving only reads the store.
   */
  readonly workerThreads?: number | boolean;
  readonly port?: number;
  readonly host?: string;
  /** Bearer token (default env TESSERA_TOKEN); unset disables auth. */
  readonly token?: string;
  /** HTTP ingest's default for event fields that are not source columns: 'reject' (default) or 'drop'. */
  readonly ingestUnknownColumns?: UnknownColumns;
  /** Features of a source whose workers leave events unapplied this long are `stale` (default 5000 ms). */
  readonly staleAfterMs?: number;
  readonly logger?: boolean;
  /** Records per worker batch (one store commit each). */
  readonly batchSize?: number;
  /** Fetches this long before the newest event stay exact (default 1 hour; worker.ts invariant 6). */
  readonly exactHistoryMs?: number;
  /** Tiles an entity keeps before it keeps less exact history (worker.ts invariant 6). */
  readonly maxTilesPerKey?: number;
  /** Called when a worker batch fails (the worker retries from its committed offset); default logs it. */
  readonly onWorkerError?: (error: Error) => void;
  /**
   * A worker whose batch has failed this many times in a row, or for this long, without a commit turns
   * /readyz unready until it commits again (default 10 failures or 30000 ms; its retries back off to 5 s).
   */
  readonly workerUnreadyAfter?: { readonly failures?: number; readonly ms?: number };
}

/** Default records per worker batch when workers run on the serving thread (see `workerThreads`). */
export const SERVING_THREAD_BATCH_SIZE = 50_000;

/** A running embedded Tessera: store, log, workers (in worker threads or not) and the HTTP API in one process. */
export interface EmbeddedServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly service: FeatureService;
  readonly store: OnlineStore;
  readonly log: EventLog;
  readonly metrics: ServeMetrics;
  readonly fetchCounters: FetchCounters;
  /** Fetch cost counters (flushed to the store every 5 s and on close; `GET /v1/usage`). */
  readonly usage: UsageRecorder;
  /**
   * Resolves once every worker has applied everything appended to the log before the call; rejects once a
   * worker stopped for good or the workers failed to start for good (they would never apply it), or on close.
   */
  drain(): Promise<void>;
  /**
   * Resolves with the error once the stream workers, having waited for the store or log to answer
   * (worker-start.ts), fail to start for a reason waiting cannot fix (e.g. a store layout or password it
   * refuses), as `startEmbedded` rejects when that happens at its first attempt; on a node without workers,
   * once the log, not answering at start, answers with another partition count; never resolves otherwise.
   * The node stays up, unready, until closed: `tessera serve` closes and exits 1, so a supervisor restarts it.
   */
  readonly failed: Promise<Error>;
  /** Per-source lag and watermark, as /metrics reports them. */
  progress(): Promise<SourceProgress[]>;
  /**
   * Worker threads running the stream workers (0: they run on the serving thread, or there are none); when
   * the workers wait to start (an unreachable store), the threads they will run in.
   */
  readonly workerThreads: number;
  /** Stops the API, the workers (each after its current commit), then closes log and store. */
  close(): Promise<void>;
}

/**
 * Starts store, event log, stream workers and the HTTP API in one process (`tessera serve`). The serving
 * thread keeps the API, store reads and ingest; the stream workers run in worker threads (worker-threads.ts)
 * when the repo comes from a folder, so their batches (hundreds of ms of synchronous work each while
 * catching up) never hold up a fetch. They report their progress back: lag, staleness, counters, drain and
 * readiness work the same either way.
 *
 * A store or log that does not answer when it starts (`StoreUnavailableError`, `LogUnavailableError`) does
 * not stop it: it listens, serves what it can (fetches answer 503 while the store is down), reports the
 * workers as not started on /readyz, and starts them once the store answers (worker-start.ts). Any other
 * failure to start the workers (definitions, partition counts) rejects.
 *
 * @example
 * const repo = await loadRepo('examples/fraud/features', { checkFiles: false });
 * const server = await startEmbedded({ repo, dataDir: '.tessera', port: 8080 });
 * // POST events to `${server.url}/v1/events/charges`, fetch `${server.url}/v1/features/fraud_model?card_id=...`
 * await server.close();
 */
export async function startEmbedded(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const staleAfterMs = opts.staleAfterMs ?? 5000;
  const { repo } = opts;
  const config = {
    store: opts.store ?? 'lmdb',
    log: opts.log ?? 'embedded',
    dataDir: opts.dataDir ?? '.tessera',
    ...(opts.redisUrl ? { redisUrl: opts.redisUrl } : {}),
    ...(opts.redisPrefix ? { redisPrefix: opts.redisPrefix } : {}),
    ...(opts.natsUrl ? { natsUrl: opts.natsUrl } : {}),
    ...(opts.kafkaBrokers ? { kafkaBrokers: opts.kafkaBrokers } : {}),
    partitions: opts.partitions ?? 1,
  } as const;
  const store = openConfiguredStore(config);
  // A cached PING: /readyz reports an unreachable store (with or without workers) without waiting on it.
  const storeHealth = watchStoreHealth(store);
  const log = openConfiguredLog(config);

  const abort = new AbortController();
  /** The stream workers once started (they may start after the API does: `retryStart`). */
  let pool: RunningWorkers | null = null;
  /** Resolves once the workers ran and stopped (or never started). */
  let loops: Promise<void> = Promise.resolve();
  let threads: WorkerThreads | null = null;
  /**
   * Set when a worker stopped for good (fenced by another writer of its partition, or its log ends before its
   * committed offset, found while it ran or when it opened: worker invariant 11), its thread died, or the
   * workers could not start for another reason than an unreachable store or log: the node turns unready
   * and keeps serving fetches.
   */
  let workerFailure: Error | null = null;
  let startFailed!: (error: Error) => void;
  const failed = new Promise<Error>((resolve) => (startFailed = resolve));
  /** While the workers wait to start because the store or log does not answer (`retryStart`), else null. */
  let startRetry: StartRetry | null = null;
  const withWorkers = opts.workers ?? true;
  /**
   * The log's partition count checked against its deployment's record (partition-record.ts) before this
   * node appends or its workers read: kept once it passed or found a mismatch, asked again after no answer.
   */
  let partitionCheck: Promise<void> | null = null;
  const checkPartitions = (): Promise<void> =>
    (partitionCheck ??= (log.checkPartitionCount?.() ?? Promise.resolve()).catch((e: unknown) => {
      if (isUnavailable(e)) partitionCheck = null;
      throw e;
    }));
  let slots: WorkerSlot[] = [];
  let threadCount = 0;
  /**
   * What the monitor watches: this process's workers once they run; before that (or without workers,
   * `--no-workers`) the workers' commits in the store (committed-progress.ts), so lag, freshness and
   * `stale` reflect the pipeline either way.
   */
  let committed: CommittedProgress;
  let monitored: MonitoredWorker[];
  try {
    slots = planStreamWorkers({ sources: repo.sources, groupBys: repo.groupBys, partitions: log.partitions });
    committed = committedProgress(store, slots);
    monitored = slots.map(({ topic, partition }, i) => ({
      topic: topic.name,
      source: topic.source.name,
      groupBys: topic.groupBys,
      partition,
      worker: { stats: () => pool?.workers[i]!.stats() ?? committed.workers[i]!.worker.stats() },
    }));
    // This process appends (HTTP ingest): complete a batch a crash left in some topics only, before workers
    // read them (file-log.ts invariant 5).
    await log.recover?.().catch((e: unknown) => {
      throw e instanceof LogWriterLockedError ? new Error(serveLockAdvice(e), { cause: e }) : e;
    });
    if (withWorkers) {
      const worker = {
        // A worker whose log ends before its committed offset (worker invariant 11) opens stopped: the node
        // serves fetches and reports it (/readyz), as it would had the log gone behind while it ran, instead
        // of failing to start (a node restarted in a rolling deploy would crash-loop).
        logBehindAtOpen: 'stop' as const,
        ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
        ...(opts.exactHistoryMs !== undefined ? { exactHistoryMs: opts.exactHistoryMs } : {}),
        ...(opts.maxTilesPerKey !== undefined ? { maxTilesPerKey: opts.maxTilesPerKey } : {}),
      };
      // A worker retries a failed batch every few seconds for as long as its store or log is down: log the
      // first failure of each streak, not every retry (/readyz and tessera_worker_consecutive_failures follow it).
      const logged = new Map<string, number>();
      const onError = (e: Error, worker: string) => {
        if (opts.onWorkerError) return opts.onWorkerError(e);
        const i = monitored.findIndex((w) => `${w.topic}/${w.partition}` === worker);
        const since = pool?.failing()[i]?.sinceMs;
        if (since !== undefined && logged.get(worker) === since) return;
        if (since !== undefined) logged.set(worker, since);
        console.error(
          `stream worker ${worker}: ${e.message} (it retries from its committed offset with backoff up to 5 s; logged once until it commits again, see /readyz and tessera_worker_consecutive_failures)`,
        );
      };
      threadCount = Math.min(workerThreadCount(opts.workerThreads, repo.dir, slots.length), slots.length);
      let firstAttempt = true;
      const startPool = async (): Promise<RunningWorkers> => {
        // A store that does not answer fails fast here, not after booting threads that would fail to open it.
        await store.ping?.().catch((e: Error) => {
          throw refusedByRedis(e) ?? e;
        });
        // The log too: with an LMDB store and `--log redis`, a wrong password or a database number Redis
        // refuses would otherwise only fail each worker's batches, forever. The first attempt runs before
        // the API listens, so it waits LOG_START_CHECK_MS at most (a blackholed NATS takes 5 s to fail);
        // `retryStart`'s later attempts wait as long as the log's own timeouts (a slow log still starts).
        const limitMs = firstAttempt ? LOG_START_CHECK_MS : null;
        firstAttempt = false;
        await checkLog(log, slots[0]?.topic.name ?? null, limitMs, checkPartitions);
        if (threadCount > 0)
          return (threads = await startWorkerThreads({
            repoDir: repo.dir!,
            config,
            slots,
            threads: threadCount,
            worker,
            onError,
          }));
        return startStreamWorkers({
          sources: repo.sources,
          groupBys: repo.groupBys,
          log,
          store,
          slots,
          groupById,
          // On the serving thread a commit stalls fetches for its length (it cannot yield and stay
          // atomic): half the default batch halves the worst stall of a worker catching up.
          worker: opts.batchSize ? worker : { ...worker, batchSize: SERVING_THREAD_BATCH_SIZE },
          onError: (e, w) => onError(e, `${w.topic}/${w.partition}`),
        });
      };
      const run = (started: RunningWorkers) => {
        pool = started;
        // Each worker retries a failed batch from its committed offset (exactly-once), with backoff; only a
        // fenced worker (another process commits its partition), one whose log ends before its committed
        // offset, or a dead thread stops for good: report it, turn unready.
        return started.run(abort.signal, (e) => {
          workerFailure ??= e;
          console.error(`tessera serve: ${e.message}`);
        });
      };
      try {
        loops = run(await startPool());
      } catch (error) {
        // Only an unreachable store or log is worth waiting for; any other error fails the start.
        if (!isUnavailable(error)) throw error;
        loops = retryStart({
          first: error as Error,
          attempt: startPool,
          signal: abort.signal,
          onRetry: (r) => {
            // Logged once per streak; /readyz has the latest error and the count.
            if (r.attempts === 1)
              console.error(
                `tessera serve: the stream workers could not start: ${sentence(r.error.message)} Serving fetches and ingest meanwhile (/readyz answers 503 until the workers start); retrying with backoff up to every ${MAX_RETRY_MS / 1000} s. Logged once until they start.`,
              );
            startRetry = r;
          },
          onFatal: (e) => {
            const failure = new Error(`the stream workers could not start: ${e.message}`, { cause: e });
            workerFailure ??= failure;
            console.error(`tessera serve: ${failure.message}`);
            startFailed(failure);
          },
        }).then((started) => {
          const r = startRetry;
          startRetry = null;
          if (started === null) return;
          if (r !== null && !abort.signal.aborted)
            console.error(
              `tessera serve: the stream workers started after ${r.attempts} failed attempt(s) over ${Math.round((Date.now() - r.sinceMs) / 1000)} s`,
            );
          return run(started);
        });
      }
    } else {
      // No workers here, but this node appends: a partition count other than the deployment's would send
      // events where no worker reads them. Checked now, or, while the log does not answer, until it does
      // (ingest checks before each append meanwhile); a mismatch fails the start, or later the node.
      const check = (limitMs: number | null) => checkLog(log, null, limitMs, checkPartitions);
      try {
        await check(LOG_START_CHECK_MS);
      } catch (error) {
        if (!isUnavailable(error)) throw error;
        loops = retryStart({
          first: error as Error,
          attempt: () => check(null),
          signal: abort.signal,
          onRetry: (r) => {
            if (r.attempts === 1)
              console.error(
                `tessera serve: cannot check the event log's partition count yet: ${sentence(r.error.message)} Ingest waits for it (503 meanwhile); retrying with backoff up to every ${MAX_RETRY_MS / 1000} s.`,
              );
          },
          onFatal: (e) => {
            workerFailure ??= e;
            console.error(`tessera serve: ${e.message}`);
            startFailed(e);
          },
        }).then(() => {});
      }
    }
  } catch (error) {
    storeHealth.stop();
    await log.close();
    await store.close();
    throw error;
  }

  const monitor = monitorPipeline({
    workers: monitored,
    log,
    sources: repo.sources,
    staleAfterMs,
    // Only while no worker of this process runs: its stats are live.
    refresh: () => (pool === null ? committed.refresh() : Promise.resolve()),
  });
  const metrics = createServeMetrics();
  const fetchCounters: FetchCounters = { storeReads: 0, entitiesRead: 0, tilesDecoded: 0 };
  const exported = { storeReads: 0, entitiesRead: 0, tilesDecoded: 0 };
  let exportedProgressFailures = 0;
  const usage = createUsageRecorder({
    store,
    registry: metrics.registry,
    workers: () => pool?.workers.map((w) => w.stats()) ?? [],
  });
  const service = createFeatureService({
    repo,
    groupById,
    fetchGroups: createFetchGroupBys(store, fetchCounters),
    emptyValues: emptyGroupValues,
    isStale: (g) => monitor.isStale(g),
    onFetch: usage.recordFetch,
  });

  const beforeScrape = () => {
    metrics.storeReads.inc(fetchCounters.storeReads - exported.storeReads);
    metrics.storeKeysRead.inc(fetchCounters.entitiesRead - exported.entitiesRead);
    metrics.tilesDecoded.inc(fetchCounters.tilesDecoded - exported.tilesDecoded);
    Object.assign(exported, fetchCounters);
    const { applied, late, keyTooLong, invalid } = monitor.counters();
    for (const [name, n] of applied) metrics.eventsApplied.labels(name).set(n);
    for (const [name, n] of late) metrics.eventsLate.labels(name).set(n);
    for (const [name, n] of keyTooLong) metrics.eventsSkipped.labels(name, 'key_too_long').set(n);
    for (const [name, n] of invalid) metrics.eventsSkipped.labels(name, 'invalid').set(n);
    const f = pool?.failing() ?? [];
    if (withWorkers)
      monitored.forEach((r, i) =>
        metrics.workerFailures.labels(r.topic, String(r.partition)).set(f[i]?.failures ?? 0),
      );
    const progress = monitor.health();
    metrics.progressReadFailures.inc(progress.failures - exportedProgressFailures);
    exportedProgressFailures = progress.failures;
    metrics.progressAge.set(Math.max(0, Date.now() - progress.observedAt) / 1000);
  };

  const unreadyFailures = opts.workerUnreadyAfter?.failures ?? 10;
  const unreadyMs = opts.workerUnreadyAfter?.ms ?? 30_000;
  /**
   * Why /readyz answers 503: the store does not answer, a worker stopped for good, the workers wait to
   * start (the store or log did not answer), or one keeps failing at one offset.
   */
  const unready = (): string | null => {
    const down = storeHealth.unready();
    if (down !== null) return down;
    if (workerFailure !== null) return workerFailure.message;
    const now = Date.now();
    // An event log never read since the node started (down from the start): the workers need it. (A store
    // down is the PING's to report, above; a log that fails later, the workers' failure streaks.) A
    // --no-workers node stays ready: it serves fetches from the store, as when the log fails later.
    const progress = monitor.health();
    if (withWorkers && !progress.observed && progress.failing?.part === 'event log')
      return `${progress.failing.what}. The ${progress.failing.part} has not answered since this node started (${progress.failures} attempt(s)); fetches are served meanwhile, and this node turns ready once it answers.`;
    const r = startRetry;
    if (r !== null)
      return `the stream workers have not started: ${r.attempts} attempt(s) over ${Math.round((now - r.sinceMs) / 1000)} s failed, the last with: ${sentence(r.error.message)} Retrying with backoff up to every ${MAX_RETRY_MS / 1000} s; fetches and ingest are served meanwhile, and this node turns ready once they start.`;
    const stuck = (pool?.failing() ?? [])
      .map((f, i) => ({ f, w: monitored[i]! }))
      .filter(({ f }) => f !== null && (f.failures >= unreadyFailures || now - f.sinceMs >= unreadyMs));
    if (stuck.length === 0) return null;
    return stuck
      .map(
        ({ f, w }) =>
          `stream worker ${w.topic}/${w.partition} has failed ${f!.failures} time(s) in a row over ${Math.round((now - f!.sinceMs) / 1000)} s at offset ${f!.offset} and applies nothing past it: ${f!.error}. The worker retries; see the error and fix its cause (this node turns ready after its next commit).`,
      )
      .join('\n');
  };

  const app = createServeApp({
    service,
    token: opts.token ?? process.env.TESSERA_TOKEN,
    metrics,
    logger: opts.logger,
    ...(opts.ingestUnknownColumns ? { ingestUnknownColumns: opts.ingestUnknownColumns } : {}),
    ingest: async (source, events, o) => {
      if (config.store === 'lmdb') {
        const tooLong = oversizeKeyIssues(source, repo.groupBys, events, groupById, 'request body');
        if (tooLong.length > 0) throw new EventValidationError(tooLong.slice(0, 20), tooLong.length);
      }
      await checkPartitions();
      const r = await ingestEvents(log, source, repo.groupBys, events, { origin: 'request body', ...o });
      threads?.appended();
      // Offsets only with a key: they are the caller's proof of where a replayed batch is.
      return o?.idempotencyKey === undefined
        ? { accepted: r.accepted }
        : { accepted: r.accepted, offsets: r.offsets, replayed: r.replayed, appended: r.appended };
    },
    ready: () => !abort.signal.aborted && workerFailure === null,
    unready,
    progress: () => monitor.progress(),
    beforeScrape,
  });
  registerUsageRoute(app, { store, groupBys: repo.groupBys, joins: repo.joins, recorder: usage, groupById });

  let url: string;
  try {
    url = await app.listen({ port: opts.port ?? 8080, host: opts.host ?? '127.0.0.1' });
  } catch (error) {
    abort.abort();
    monitor.stop();
    storeHealth.stop();
    await usage.close().catch(() => {});
    await loops;
    await log.close();
    await store.close();
    throw new Error(
      `cannot listen on ${opts.host ?? '127.0.0.1'}:${opts.port ?? 8080}: ${(error as Error).message}; pick another --port`,
      { cause: error },
    );
  }

  return {
    url,
    app,
    service,
    store,
    log,
    metrics,
    fetchCounters,
    usage,
    workerThreads: threadCount,
    failed,
    drain: () =>
      monitor.drain(() =>
        workerFailure === null ? null : new Error(`cannot drain: ${workerFailure.message}`),
      ),
    progress: () => monitor.progress(),
    async close() {
      await app.close();
      abort.abort();
      monitor.stop();
      storeHealth.stop();
      // Counted fetches reach the store before it closes (a failed flush is reported, not fatal).
      await usage.close().catch((e: Error) => console.error(`tessera usage counters: ${e.message}`));
      await loops;
      await log.close();
      await store.close();
    },
  };
}

/** Resolves `EmbeddedOptions.workerThreads` to a thread count (0: the serving thread runs the workers). */
function workerThreadCount(
  option: number | boolean | undefined,
  dir: string | undefined,
  workers: number,
): number {
  if (workers === 0 || option === false || option === 0) return 0;
  if (option === undefined && dir === undefined) return 0;
  if (dir === undefined)
    throw new Error(
      'worker threads load the definitions from the repo folder, but this repo has no `dir`: pass a repo from loadRepo(folder), or workerThreads: false',
    );
  if (option === undefined || option === true) return defaultThreadCount(workers);
  if (!Number.isInteger(option) || option < 0)
    throw new Error(`workerThreads: expected a thread count (0 or more) or a boolean, got ${option}`);
  return option;
}

/** The writer-lock refusal (file-log.ts invariant 7) with advice for `tessera serve` rather than `stream --replay`. */
function serveLockAdvice(e: LogWriterLockedError): string {
  return (
    `The embedded event log in ${e.dir} is being written by ${e.holder}, most likely another tessera serve or ` +
    `tessera stream using this --data-dir; only one process may append to it (two would overwrite each other's ` +
    `events). Stop that process, or give this tessera serve its own --data-dir (and --port). To run several serve ` +
    `nodes over the same features, put them on a shared log and store (--log redis|nats|kafka --store redis) and ` +
    `start all but one with --no-workers. If no such process runs any more, delete ${e.lockPath}.`
  );
}

/** How long the workers' start waits for the event log's first answer before waiting for it after listening. */
const LOG_START_CHECK_MS = 1000;

/**
 * Checks the log's partition count (`checkPartitions`) and reads its end offsets of `topic` (null: none),
 * throwing what the start should do about a failure (`logStartError`; a partition count mismatch as is), or
 * a `LogUnavailableError` when no answer came within `limitMs` (null: no limit).
 */
async function checkLog(
  log: EventLog,
  topic: string | null,
  limitMs: number | null,
  checkPartitions: () => Promise<void>,
): Promise<void> {
  const read = checkPartitions().then(
    () =>
      topic === null
        ? null
        : log.endOffsets(topic).then(
            () => null,
            (e: Error) => logStartError(e),
          ),
    // Not an unavailable log: a mismatch or a record that is not a count, which waiting will not fix.
    (e: Error) => (isUnavailable(e) ? (refusedByRedis(e) ?? e) : e),
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Error>((resolve) => {
    if (limitMs === null) return;
    const message = `the ${log.kind} event log did not answer a check of its partition count and end offsets within ${limitMs} ms`;
    timer = setTimeout(() => resolve(new LogUnavailableError(message)), limitMs);
  });
  const failure = await Promise.race([read, late]).finally(() => clearTimeout(timer));
  if (failure !== null) throw failure;
}

/**
 * A failed read of the event log at start, as the start should take it: an error waiting will not fix (a
 * reply error such as WRONGPASS, or Redis refusing the URL's database number) as is, to fail the start;
 * anything else as unavailable, to wait for the log (the adapters do not all type their read errors).
 */
function logStartError(error: Error): Error {
  if (isUnavailable(error)) return refusedByRedis(error) ?? error;
  const unavailable = new LogUnavailableError(error.message, { cause: error });
  const refused = refusedByRedis(unavailable);
  if (refused === null) return unavailable;
  // `databaseRefused`'s own message names the database and the fix; a password fix would mislead.
  return (refused.cause as { command?: { name?: string } }).command?.name === 'select' ? error : refused;
}

/** `text` ending in one period, to be followed by another sentence. */
function sentence(text: string): string {
  return text.replace(/\.*\s*$/, '.');
}

/**
 * A failed store PING or log read that Redis answered with an error waiting will not fix (NOAUTH, WRONGPASS, NOPERM;
 * on a Cluster, the nodes' last error, a cause further down), as a plain error, so the start fails instead
 * of waiting for the store; null for any other failure (no answer, or a transient reply: LOADING, BUSY,
 * MASTERDOWN, CLUSTERDOWN, TRYAGAIN).
 */
function refusedByRedis(error: Error): Error | null {
  // A plain error already says what to fix (e.g. the store's database number refused).
  if (!isUnavailable(error)) return null;
  let cause = error.cause;
  for (let depth = 0; cause instanceof Error && cause.name !== 'ReplyError' && depth < 4; depth++)
    cause = cause.cause;
  if (!(cause instanceof Error) || cause.name !== 'ReplyError') return null;
  if (/^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/.test(cause.message)) return null;
  const fix = /cluster support disabled/.test(cause.message)
    ? 'this server is a single Redis, not a Cluster node: use --redis redis://host:port (env REDIS_URL)'
    : "fix the user and password in --redis (redis://user:password@host:port, or redis+cluster://user:password@host:port,... for a Cluster; env REDIS_URL) or the server's ACL for this user";
  return new Error(
    `${sentence(error.message.replace(/ Check that Redis is running.*$/s, ''))} Redis answered with an error, so waiting will not help: ${fix}.`,
    { cause },
  );
}
