import type { GroupByDef, SourceDef } from '../define/types.ts';
import type { EventLog } from '../online/log/event-log.ts';
import type { StreamWorker } from '../online/worker.ts';
import { LagTracker } from './lag-tracker.ts';
import type { SourceProgress } from './routes/ops-routes.ts';

/** A stream worker of this process (on the serving thread or in a worker thread) with what it updates. */
export interface MonitoredWorker {
  readonly topic: string;
  readonly source: string;
  readonly groupBys: readonly GroupByDef[];
  readonly partition: number;
  /** Its latest stats: live for a worker on this thread, as of its last commit for one in a worker thread. */
  readonly worker: Pick<StreamWorker, 'stats'>;
}

/** Progress of the process's stream workers: staleness, lag, watermarks and counters. */
export interface PipelineMonitor {
  /** Whether the workers of a group-by's source leave events unapplied longer than the threshold. */
  isStale(g: GroupByDef): boolean;
  /** Lag and watermark per source (observes the log first). */
  progress(): Promise<SourceProgress[]>;
  /**
   * Events applied, late beyond retention, and skipped as keys too long or invalid records (worker.ts
   * invariant 10), by group-by name, summed over workers.
   */
  counters(): {
    applied: Map<string, number>;
    late: Map<string, number>;
    keyTooLong: Map<string, number>;
    invalid: Map<string, number>;
  };
  /** Resolves once every worker has applied everything appended to the log before the call. */
  drain(): Promise<void>;
  stop(): void;
}

/**
 * Watches the workers: every 100 ms it records each partition's log end offset, so staleness is known on
 * the fetch path without a log call (see lag-tracker.ts for why staleness is judged by age).
 *
 * @example
 * const monitor = monitorPipeline({ workers, log, sources: repo.sources, staleAfterMs: 5000 });
 * monitor.isStale(cardStats); // false while the workers keep up
 */
export function monitorPipeline(opts: {
  readonly workers: readonly MonitoredWorker[];
  readonly log: EventLog;
  readonly sources: readonly SourceDef[];
  readonly staleAfterMs: number;
  /** Refreshes the workers' stats before each observation (workers of other processes: committed-progress.ts). */
  readonly refresh?: () => Promise<void>;
}): PipelineMonitor {
  const tracked = opts.workers.map((w) => ({ ...w, lag: new LagTracker(opts.staleAfterMs) }));
  const bySource = new Map<string, typeof tracked>();
  for (const t of tracked) bySource.set(t.source, [...(bySource.get(t.source) ?? []), t]);

  const observe = async (): Promise<void> => {
    await opts.refresh?.();
    const now = Date.now();
    const ends = new Map<string, number[]>();
    for (const t of tracked) {
      let e = ends.get(t.topic);
      if (e === undefined) ends.set(t.topic, (e = await opts.log.endOffsets(t.topic)));
      t.lag.observe(now, t.worker.stats().nextOffset, e[t.partition] ?? 0);
    }
  };
  const timer = setInterval(() => void observe().catch(() => {}), 100);
  timer.unref();

  return {
    isStale(g) {
      const now = Date.now();
      return (bySource.get(g.source.name) ?? []).some(
        (t) => t.groupBys.includes(g) && t.lag.isBehind(now, t.worker.stats().nextOffset),
      );
    },
    async progress() {
      await observe();
      return opts.sources.map((s) => {
        const ts = bySource.get(s.name) ?? [];
        const marks = ts.map((t) => t.worker.stats().watermark).filter((w): w is number => w !== null);
        return {
          source: s.name,
          lag: ts.reduce((n, t) => n + t.lag.lag, 0),
          watermark: marks.length === 0 ? null : Math.max(...marks),
        };
      });
    },
    counters() {
      const applied = new Map<string, number>();
      const late = new Map<string, number>();
      const keyTooLong = new Map<string, number>();
      const invalid = new Map<string, number>();
      const add = (m: Map<string, number>, name: string, n: number | undefined) =>
        m.set(name, (m.get(name) ?? 0) + (n ?? 0));
      for (const t of tracked) {
        for (const [name, c] of Object.entries(t.worker.stats().groupBys)) {
          add(applied, name, c.applied);
          add(late, name, c.lateBeyondRetention);
          add(keyTooLong, name, c.keyTooLong);
          add(invalid, name, c.invalid);
        }
      }
      return { applied, late, keyTooLong, invalid };
    },
    async drain() {
      const targets = await Promise.all(
        tracked.map(async (t) => ({ t, end: (await opts.log.endOffsets(t.topic))[t.partition] ?? 0 })),
      );
      for (const { t, end } of targets) {
        while (t.worker.stats().nextOffset < end) await new Promise((resolve) => setTimeout(resolve, 2));
      }
    },
    stop: () => clearInterval(timer),
  };
}
