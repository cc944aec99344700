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
  /** Lag and watermark per source (observes first; if that fails, as of the last success: see `health`). */
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
  /**
   * Resolves once every worker has applied everything appended to the log before the call to every
   * group-by (none is being caught up, catch-up.ts); rejects, while it
   * waits, with `failure()`'s error once it returns one (a worker that will never apply it), or once stopped.
   */
  drain(failure?: () => Error | null): Promise<void>;
  /** Whether lag, watermarks and staleness are current: when they were last observed, and failed observations. */
  health(): ProgressHealth;
  stop(): void;
}

/** How current the monitor's view of the pipeline is. */
export interface ProgressHealth {
  /** When the last observation succeeded (epoch ms; the monitor's start before the first). */
  readonly observedAt: number;
  /** Observations that failed since the monitor started (each a failed read, retried on the next tick). */
  readonly failures: number;
  /** Whether any observation succeeded yet. */
  readonly observed: boolean;
  /**
   * While observations fail (null once one succeeds): what the latest one read and its error, and which
   * part of the pipeline did not answer.
   */
  readonly failing: { readonly what: string; readonly part: 'event log' | 'online store' } | null;
}

/**
 * Watches the workers: every 100 ms it records each partition's log end offset, so staleness is known on
 * the fetch path without a log call (see lag-tracker.ts for why staleness is judged by age).
 *
 * An observation can fail (the log's end offsets, or `refresh`: the store read of the workers' commits on a
 * `--no-workers` node). Lag and watermarks then stay as of the last success, so the monitor does not pretend
 * they are current: it logs the first failure of a streak (and its end) with what failed, counts failures
 * (`health`), and once no observation has succeeded for longer than `staleAfterMs` (reads failing, or one
 * hanging: one read is in flight at a time) it calls every monitored group-by stale, since it can no longer
 * tell that the workers keep up. `progress` waits at most a second for a fresh observation.
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

  let observedAt = Date.now();
  /** Whether any observation succeeded yet (`observedAt` is the monitor's start until one does). */
  let observed = false;
  let failures = 0;
  let failing: ProgressHealth['failing'] = null;
  /** The current streak of failed observations (logged at its start and end), or null. */
  let streak: { since: number; count: number } | null = null;
  let stopped = false;

  /** Observes lag; never throws (a failure is recorded and reported once per streak). */
  const observeOnce = async (): Promise<void> => {
    let step = "reading the stream workers' committed progress from the online store";
    try {
      await opts.refresh?.();
      step = "reading the event log's end offsets";
      const now = Date.now();
      const ends = new Map<string, number[]>();
      for (const t of tracked) {
        let e = ends.get(t.topic);
        if (e === undefined) ends.set(t.topic, (e = await opts.log.endOffsets(t.topic)));
        t.lag.observe(now, t.worker.stats().nextOffset, e[t.partition] ?? 0);
      }
      observedAt = now;
      observed = true;
      failing = null;
      if (streak !== null) {
        console.error(
          `tessera serve: pipeline progress read again after ${streak.count} failed attempt(s) over ${Math.round((now - streak.since) / 1000)} s; lag, freshness and 'stale' statuses are current again`,
        );
        streak = null;
      }
    } catch (error) {
      if (stopped) return; // a read cut short by shutdown (the store closing) is no failure to report
      failures++;
      const what = `${step} failed: ${(error as Error).message.replace(/\.+$/, '')}`;
      failing = { what, part: step.includes('log') ? 'event log' : 'online store' };
      if (streak !== null) {
        streak.count++;
        return;
      }
      streak = { since: Date.now(), count: 1 };
      console.error(
        `tessera serve: ${what}. ${observed ? `Lag and freshness stay as of the last successful read (${new Date(observedAt).toISOString()}; tessera_progress_age_seconds)` : `No read has succeeded since this node started (${new Date(observedAt).toISOString()}), so lag and freshness are unknown (tessera_progress_age_seconds counts from the start)`}, and features of the monitored sources turn 'stale' once reads have failed for ${opts.staleAfterMs} ms (--stale-after). Retrying every 100 ms (counted in tessera_progress_read_failures_total); check that the ${failing.part} is reachable and readable by this node. Logged once until a read succeeds.`,
      );
    }
  };
  /**
   * The observation in flight, shared: a read that hangs (e.g. a Redis log client without a command
   * timeout, on a Redis that stopped answering) must not pile up a new read every tick.
   */
  let inFlight: Promise<void> | null = null;
  const observe = (): Promise<void> =>
    (inFlight ??= observeOnce().finally(() => {
      inFlight = null;
    }));
  const timer = setInterval(() => void observe(), 100);
  timer.unref();
  /** How long `progress` waits for a fresh observation before answering with the last one. */
  const progressWaitMs = Math.min(1000, opts.staleAfterMs);

  return {
    isStale(g) {
      const now = Date.now();
      // Blind: no observation succeeded for that long, whether reads fail or hang.
      const blind = now - observedAt > opts.staleAfterMs;
      return (bySource.get(g.source.name) ?? []).some((t) => {
        if (!t.groupBys.includes(g)) return false;
        const stats = t.worker.stats();
        // A group-by being caught up on the log (catch-up.ts) lacks some of its events: stale until done.
        if (stats.catchingUp?.some((c) => c.groupBys.includes(g.name))) return true;
        return blind || t.lag.isBehind(now, stats.nextOffset);
      });
    },
    async progress() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        observe(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, progressWaitMs))),
      ]).finally(() => clearTimeout(timer));
      return opts.sources.map((s) => {
        const ts = bySource.get(s.name) ?? [];
        const marks = ts.map((t) => t.worker.stats().watermark).filter((w): w is number => w !== null);
        const catchingUp = ts.flatMap((t) =>
          (t.worker.stats().catchingUp ?? []).map((c) => ({
            topic: t.topic,
            partition: t.partition,
            groupBys: c.groupBys,
            nextOffset: c.nextOffset,
            target: c.target,
          })),
        );
        // Persistent (catch-up.ts invariant 6): its group-bys lack the source's earlier events until uploaded.
        const missingHistory = ts.flatMap((t) => {
          const m = t.worker.stats().missingHistory;
          return m ? [{ topic: t.topic, partition: t.partition, groupBys: m.groupBys, since: m.since }] : [];
        });
        return {
          source: s.name,
          lag: ts.reduce((n, t) => n + t.lag.lag, 0),
          watermark: marks.length === 0 ? null : Math.max(...marks),
          ...(catchingUp.length > 0 ? { catchingUp } : {}),
          ...(missingHistory.length > 0 ? { missingHistory } : {}),
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
    async drain(failure) {
      const check = () => {
        const e = failure?.() ?? null;
        if (e !== null) throw e;
        if (stopped) throw new Error('cannot drain: the server is closing');
      };
      const targets = await Promise.all(
        tracked.map(async (t) => ({ t, end: (await opts.log.endOffsets(t.topic))[t.partition] ?? 0 })),
      );
      for (const { t, end } of targets) {
        // A group-by being caught up (catch-up.ts) has not applied everything below `end` either.
        while (t.worker.stats().nextOffset < end || (t.worker.stats().catchingUp?.length ?? 0) > 0) {
          check();
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }
    },
    health: () => ({ observedAt, failures, observed, failing }),
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
