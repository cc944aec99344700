import type { GroupByDef, SourceDef } from '../define/types.ts';
import { catchingUpOf, planCatchUp, runCatchUp } from './catch-up.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import type { EventLog } from './log/event-log.ts';
import { membersName } from './members.ts';
import type { OnlineStore } from './store.ts';
import { streamTopics, type Topic } from './topics.ts';
import {
  createStreamWorker,
  type CatchingUp,
  type StreamWorker,
  type WorkerOptions,
  type WorkerStats,
} from './worker.ts';

/** One stream worker to run: a (topic, partition) pair. */
export interface WorkerSlot {
  readonly topic: Topic;
  readonly partition: number;
}

/** Options of the stream workers that the runners pass on (plain data, so worker threads get them too). */
export type RunnerWorkerOptions = Partial<
  Pick<
    WorkerOptions,
    | 'batchSize'
    | 'pollMs'
    | 'maxCachedEntities'
    | 'maxCachedRuns'
    | 'maxRunBytes'
    | 'exactHistoryMs'
    | 'maxTilesPerKey'
    | 'logBehindAtOpen'
  >
>;

/** What `tessera serve` needs of running stream workers, in this thread or in worker threads. */
export interface RunningWorkers {
  /** The workers, each with its latest stats (topic, partition, committed offset, watermark, counters). */
  readonly workers: readonly { stats(): WorkerStats }[];
  /**
   * Runs every worker until `signal` aborts (each retries failed batches from its committed offset) and
   * resolves once all have stopped, their current commit done. A worker that stops for good (fenced by
   * another writer of its partition, or its thread died) is reported to `onFailure` at once; the others
   * keep running.
   */
  run(signal: AbortSignal, onFailure: (error: Error) => void): Promise<void>;
  /**
   * Per worker (in `workers` order), its failed batches since it last committed, or null while it is not
   * failing. A worker retries a failed batch forever, so this is how a partition stuck at one offset shows.
   */
  failing(): (WorkerFailing | null)[];
}

/** A worker whose batch at `offset` failed `failures` times in a row, the first at `sinceMs`, no commit since. */
export interface WorkerFailing {
  readonly offset: number;
  readonly failures: number;
  /** Epoch ms of the first of these failures. */
  readonly sinceMs: number;
  /** Message of the latest failure. */
  readonly error: string;
}

export interface StreamRunner extends RunningWorkers {
  readonly workers: readonly StreamWorker[];
  /** Runs every worker until the log ends observed now are committed. */
  drain(): Promise<void>;
  stats(): WorkerStats[];
}

/**
 * The (topic, partition) workers a process runs for the repo: one per topic of every source that has
 * group-bys (topics.ts decides the topics) and owned partition. Throws on a partition the log lacks.
 *
 * @example
 * planStreamWorkers({ sources, groupBys, partitions: 4, owned: [0, 2] }); // 2 per topic
 */
export function planStreamWorkers(opts: {
  readonly sources: readonly SourceDef[];
  readonly groupBys: readonly GroupByDef[];
  /** Partitions of the log. */
  readonly partitions: number;
  /** Partitions this process owns (default: all). */
  readonly owned?: readonly number[];
}): WorkerSlot[] {
  const owned = opts.owned ?? Array.from({ length: opts.partitions }, (_, i) => i);
  for (const p of owned)
    if (!Number.isInteger(p) || p < 0 || p >= opts.partitions)
      throw new Error(
        `stream workers: partition ${p} does not exist; the log has ${opts.partitions} partition(s) (0..${opts.partitions - 1}). Fix --owned or --partitions.`,
      );
  const slots: WorkerSlot[] = [];
  for (const source of opts.sources)
    for (const topic of streamTopics(source, opts.groupBys, opts.partitions))
      if (topic.groupBys.length > 0) for (const partition of owned) slots.push({ topic, partition });
  return slots;
}

/**
 * Opens the stream workers `planStreamWorkers` lists (or `slots`), all in this thread. Scale-out runs this
 * on several machines with disjoint `partitions` lists; worker-threads.ts runs it in worker threads.
 *
 * @example
 * const runner = await startStreamWorkers({ sources, groupBys, log, store });
 * await runner.drain();
 */
export async function startStreamWorkers(opts: {
  readonly sources: readonly SourceDef[];
  readonly groupBys: readonly GroupByDef[];
  readonly log: EventLog;
  readonly store: OnlineStore;
  /** Partitions this process owns (default: all). */
  readonly partitions?: readonly number[];
  /** Run exactly these workers (default: every planned one). */
  readonly slots?: readonly WorkerSlot[];
  readonly groupById?: (g: GroupByDef) => string;
  readonly worker?: RunnerWorkerOptions & Pick<WorkerOptions, 'onCommit'>;
  /**
   * Called when a batch fails (the worker retries it from its committed offset); default: console.error
   * naming the worker.
   */
  readonly onError?: (error: Error, worker: { readonly topic: string; readonly partition: number }) => void;
  /** Called when `failing()` of a worker changes (it failed, or it recovered). */
  readonly onFailingChange?: () => void;
}): Promise<StreamRunner> {
  const slots =
    opts.slots ??
    planStreamWorkers({
      sources: opts.sources,
      groupBys: opts.groupBys,
      partitions: opts.log.partitions,
      ...(opts.partitions ? { owned: opts.partitions } : {}),
    });
  const workers: StreamWorker[] = [];
  const failing: (WorkerFailing | null)[] = slots.map(() => null);
  const recovered = (i: number) => {
    if (failing[i] === null) return;
    failing[i] = null;
    opts.onFailingChange?.();
  };
  // A failure is over once the worker commits, or once its read at the committed offset comes back empty
  // (nothing pending: a log or store that was down is back, with no new events to prove it by a commit).
  const slotIndex = new Map(slots.map((s, i) => [`${s.topic.name}\0${s.partition}`, i]));
  const log = opts.log;
  const watchedLog: EventLog = {
    kind: log.kind,
    partitions: log.partitions,
    append: (topic, entries) => log.append(topic, entries),
    endOffsets: (topic) => log.endOffsets(topic),
    close: () => log.close(),
    async read(topic, partition, from, max, waitMs) {
      const out = await log.read(topic, partition, from, max, waitMs);
      const i = slotIndex.get(`${topic}\0${partition}`);
      if (out.length === 0 && i !== undefined && failing[i]?.offset === from) recovered(i);
      return out;
    },
  };
  const idOf = opts.groupById ?? defaultGroupById;
  /** What `planCatchUp` needs to tell a topic newer than its source's history (catch-up.ts invariant 6). */
  const history = (topic: Topic) => ({
    log,
    topics: streamTopics(topic.source, opts.groupBys, log.partitions).map((t) => t.name),
  });
  for (const [i, { topic, partition }] of slots.entries()) {
    const onError = (e: Error) => {
      const offset = workers[i]!.stats().nextOffset;
      const was = failing[i];
      failing[i] =
        was && was.offset === offset
          ? { ...was, failures: was.failures + 1, error: e.message }
          : { offset, failures: 1, sinceMs: Date.now(), error: e.message };
      opts.onFailingChange?.();
      if (opts.onError) opts.onError(e, { topic: topic.name, partition });
      else console.error(`stream worker ${topic.name}/${partition}: ${e.message}`);
    };
    const onCommit = opts.worker?.onCommit;
    const { onCommit: _, ...workerOptions } = opts.worker ?? {};
    // Group-bys new to the partition are caught up on the log before its worker applies events (catch-up.ts).
    const plan = await planCatchUp(opts.store, topic, partition, idOf, history(topic));
    const main = await createStreamWorker({
      ...workerOptions,
      onCommit: (info) => {
        recovered(i);
        onCommit?.(info);
      },
      onError,
      log: watchedLog,
      store: opts.store,
      topic,
      partition,
      groupById: idOf,
      // Its commits expect the members entry its catch-up leaves: another process's catch-up that took the
      // partition over for other definitions fences it (catch-up.ts invariant 1).
      fenceOn: { [membersName(topic.name, partition)]: plan.joined },
    });
    let catching: CatchingUp[] = catchingUpOf(plan);
    let caughtUp = false;
    let planned = true;
    /** Runs the partition's catch-up if it is not done yet; true once it is (false: aborted). */
    const catchUp = async (mode: 'run' | 'drain', signal?: AbortSignal): Promise<boolean> => {
      if (caughtUp) return true;
      // A later attempt (after an aborted or failed one) plans again from what the store holds now.
      const current = planned ? plan : await planCatchUp(opts.store, topic, partition, idOf, history(topic));
      planned = false;
      caughtUp = await runCatchUp({
        plan: current,
        log: watchedLog,
        store: opts.store,
        groupById: idOf,
        mode,
        ...(signal ? { signal } : {}),
        worker: workerOptions,
        onCommit: (info) => {
          recovered(i);
          onCommit?.(info);
        },
        onError,
        onProgress: (left) => (catching = left),
      });
      return caughtUp;
    };
    workers.push({
      async step() {
        await catchUp('drain');
        return main.step();
      },
      async drain() {
        await catchUp('drain');
        await main.drain();
      },
      async run(signal) {
        if (await catchUp('run', signal)) await main.run(signal);
      },
      stats: () => {
        const stats = main.stats();
        return catching.length === 0 && plan.missingHistory === null
          ? stats
          : {
              ...stats,
              ...(catching.length > 0 ? { catchingUp: catching } : {}),
              ...(plan.missingHistory !== null ? { missingHistory: plan.missingHistory } : {}),
            };
      },
    });
  }
  return {
    workers,
    async drain() {
      await Promise.all(workers.map((w) => w.drain()));
    },
    async run(signal, onFailure) {
      await Promise.all(workers.map((w) => w.run(signal).catch((e: Error) => onFailure(e))));
    },
    stats: () => workers.map((w) => w.stats()),
    failing: () => [...failing],
  };
}
