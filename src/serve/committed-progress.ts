import { groupById } from '../online/group-by-id.ts';
import {
  catchUpOffsetName,
  logStartName,
  membersName,
  missingHistoryOf,
  parseMembers,
} from '../online/members.ts';
import type { OnlineStore } from '../online/store.ts';
import type { WorkerSlot } from '../online/stream-runner.ts';
import {
  offsetName,
  watermarkName,
  countersName,
  uploadCutoffName,
  type GroupByCounters,
  type WorkerStats,
} from '../online/worker.ts';
import type { MonitoredWorker } from './pipeline-monitor.ts';

/** Workers of other processes, seen through what they commit, and the read that refreshes that view. */
export interface CommittedProgress {
  readonly workers: readonly MonitoredWorker[];
  /** Reads every slot's committed offset, watermark and counters from the store (joins a read in flight). */
  refresh(): Promise<void>;
}

/**
 * The stream workers of `slots` as a serving node without workers of its own (`tessera serve --no-workers`
 * next to `tessera stream` processes) sees them: through the offset, watermark and counters each commits
 * to the store with its tiles (worker.ts invariant 2). Monitoring them like local workers gives such a node
 * the same lag and freshness metrics and the same `stale` status; without this it reported lag 0 and
 * never `stale`, however far behind the workers were (or if none ran). Before the first refresh, and for a
 * partition no worker committed yet, the next offset is 0 (everything in the log is unapplied).
 *
 * @example
 * const remote = committedProgress(store, planStreamWorkers({ sources, groupBys, partitions: 2 }));
 * await remote.refresh();
 * remote.workers[0].worker.stats().nextOffset; // what partition 0's worker committed
 */
export function committedProgress(store: OnlineStore, slots: readonly WorkerSlot[]): CommittedProgress {
  const views = slots.map(({ topic, partition }) => {
    let stats: WorkerStats = {
      topic: topic.name,
      partition,
      nextOffset: 0,
      watermark: null,
      recordsRead: 0,
      filtered: 0,
      invalid: 0,
      batches: 0,
      cachedEntities: 0,
      groupBys: {},
    };
    return {
      names: [
        offsetName(topic.name, partition),
        watermarkName(topic.name, partition),
        countersName(topic.name, partition),
        membersName(topic.name, partition),
        ...topic.groupBys.map((g) => catchUpOffsetName(groupById(g), topic.name, partition)),
        logStartName(topic.name, partition),
        ...topic.groupBys.map((g) => uploadCutoffName(groupById(g))),
      ],
      set(saved: Record<string, string>, names: readonly string[]) {
        const [offset, watermark, counters, members, ...progress] = names.map((n) => saved[n]);
        // Group-bys the partition's worker has not applied its events to yet (online/catch-up.ts): stale.
        const applied = parseMembers(members);
        const target = offset === undefined ? 0 : Number(offset);
        const missing =
          applied === null || target === 0
            ? []
            : topic.groupBys.filter((g) => !applied.includes(groupById(g)));
        const gap = missingHistoryOf(
          topic.groupBys,
          saved[logStartName(topic.name, partition)],
          saved,
          groupById,
        );
        const { missingHistory: _, ...rest } = stats;
        stats = {
          ...rest,
          ...(gap !== null ? { missingHistory: gap } : {}),
          catchingUp: missing.map((g) => ({
            id: groupById(g),
            groupBys: [g.name],
            nextOffset: Math.min(target, Number(progress[topic.groupBys.indexOf(g)] ?? 0)),
            target,
          })),
          nextOffset: offset === undefined ? 0 : Number(offset),
          watermark:
            watermark === undefined || !Number.isFinite(Number(watermark)) ? null : Number(watermark),
          groupBys: counters === undefined ? {} : (JSON.parse(counters) as Record<string, GroupByCounters>),
        };
      },
      monitored: {
        topic: topic.name,
        source: topic.source.name,
        groupBys: topic.groupBys,
        partition,
        worker: { stats: () => stats },
      } satisfies MonitoredWorker,
    };
  });
  const allNames = views.flatMap((v) => v.names);
  let inFlight: Promise<void> | null = null;
  const read = async () => {
    const saved = await store.readOffsets(allNames);
    for (const v of views) v.set(saved, v.names);
  };
  return {
    workers: views.map((v) => v.monitored),
    // One read at a time: the monitor ticks every 100 ms, and a hung store must not pile reads up.
    refresh() {
      if (views.length === 0) return Promise.resolve();
      inFlight ??= read().finally(() => (inFlight = null));
      return inFlight;
    },
  };
}
