import type { GroupByDef, SourceDef } from '../define/types.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import type { EventLog } from './log/event-log.ts';
import type { OnlineStore } from './store.ts';
import { streamTopics } from './topics.ts';
import { createStreamWorker, type StreamWorker, type WorkerOptions, type WorkerStats } from './worker.ts';

export interface StreamRunner {
  readonly workers: readonly StreamWorker[];
  /** Runs every worker until the log ends observed now are committed. */
  drain(): Promise<void>;
  /** Runs every worker until `signal` aborts (each retries failed batches from its committed offset). */
  run(signal: AbortSignal): Promise<void>;
  stats(): WorkerStats[];
}

/**
 * Opens one worker per (topic, partition) for every source that has group-bys (topics.ts decides the
 * topics), all in this process. Scale-out runs this on several machines with disjoint `partitions` lists.
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
  readonly groupById?: (g: GroupByDef) => string;
  readonly worker?: Partial<
    Pick<
      WorkerOptions,
      | 'batchSize'
      | 'pollMs'
      | 'maxCachedEntities'
      | 'maxCachedRuns'
      | 'maxRunBytes'
      | 'onCommit'
      | 'onError'
      | 'exactHistoryMs'
    >
  >;
}): Promise<StreamRunner> {
  const owned = opts.partitions ?? Array.from({ length: opts.log.partitions }, (_, i) => i);
  for (const p of owned)
    if (!Number.isInteger(p) || p < 0 || p >= opts.log.partitions)
      throw new Error(
        `stream workers: partition ${p} does not exist; the log has ${opts.log.partitions} partition(s) (0..${opts.log.partitions - 1}). Fix --owned or --partitions.`,
      );
  const workers: StreamWorker[] = [];
  for (const source of opts.sources) {
    for (const topic of streamTopics(source, opts.groupBys, opts.log.partitions)) {
      if (topic.groupBys.length === 0) continue;
      for (const partition of owned) {
        workers.push(
          await createStreamWorker({
            ...opts.worker,
            log: opts.log,
            store: opts.store,
            topic,
            partition,
            groupById: opts.groupById ?? defaultGroupById,
          }),
        );
      }
    }
  }
  return {
    workers,
    async drain() {
      await Promise.all(workers.map((w) => w.drain()));
    },
    async run(signal) {
      await Promise.all(workers.map((w) => w.run(signal)));
    },
    stats: () => workers.map((w) => w.stats()),
  };
}
