import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { groupById } from './group-by-id.ts';
import type { OnlineConfig } from './runtime-config.ts';
import type { RunnerWorkerOptions, RunningWorkers, WorkerFailing, WorkerSlot } from './stream-runner.ts';
import type { WorkerStats } from './worker.ts';

/**
 * Stream workers in `node:worker_threads` threads, so a worker catching up (seconds of synchronous batch
 * processing, commits and log-frame parsing) never stalls the thread that serves fetches.
 *
 * Invariants:
 * 1. Only plain data crosses to a thread (`ThreadSetup`): the repo folder, the runtime config and the
 *    (topic, partition) slots it runs. Each thread loads the definitions itself (loadRepo) and opens its
 *    own store and log connections (lmdb-js shares one LMDB environment between the threads of a process;
 *    LMDB serializes the writers), then checks that its group-bys have the store ids the caller planned.
 * 2. A thread posts its workers' stats after every commit (at most one message per `STATS_EVERY_MS`), so
 *    lag, staleness, drain and counters on the calling thread are at most that old.
 * 3. Nothing a thread does is silent: batch errors (retried by the worker) go to `onError`, and the thread
 *    posts its workers' `failing()` whenever it changes (so a worker stuck at one offset shows on the
 *    calling thread); a worker that stops for good (fenced, or its log behind its store: worker.ts
 *    invariant 11, also found at open) and a thread that dies (uncaught error,
 *    unexpected exit) go to `onFailure`.
 * 4. A stop lets each worker finish its current commit; a thread that has not exited `STOP_TIMEOUT_MS`
 *    after a stop is terminated (commits are atomic, so at worst a batch is redone on restart) and
 *    reported.
 * 5. Each thread reads through its own log instance. The embedded file log wakes waiting readers of the
 *    appending instance only, so the appending thread bumps a shared counter after each append
 *    (`appended`) and waiting thread readers wake at once instead of at their next 10 ms poll; Redis, NATS
 *    and Kafka wake blocked readers themselves.
 */

/** Plain data a worker thread starts from (worker-thread.ts). */
export interface ThreadSetup {
  /** Folder of the feature repo: the thread loads its definitions with loadRepo. */
  readonly repoDir: string;
  readonly config: OnlineConfig;
  /** The workers to run, with the store ids of their topic's group-bys as planned by the caller. */
  readonly slots: readonly {
    readonly topic: string;
    readonly partition: number;
    readonly groupBys: string[];
  }[];
  readonly worker: RunnerWorkerOptions;
  readonly statsEveryMs: number;
  /** Int32 append counter shared with the appending thread (file log only, invariant 5). */
  readonly appends: SharedArrayBuffer | null;
}

/** Messages to a worker thread. */
export type ToThread = { readonly type: 'run' } | { readonly type: 'drain' } | { readonly type: 'stop' };

export interface ThreadError {
  readonly message: string;
  readonly stack?: string;
}

/** Messages from a worker thread. */
export type FromThread =
  | { readonly type: 'ready'; readonly stats: WorkerStats[] }
  | { readonly type: 'stats'; readonly stats: WorkerStats[] }
  /** A batch of worker `topic/partition` failed; the worker retries it from its committed offset. */
  | { readonly type: 'retry'; readonly worker: string; readonly error: ThreadError }
  /** The thread's workers' failed-batch state changed (a worker failed again, or committed). */
  | { readonly type: 'failing'; readonly failing: (WorkerFailing | null)[] }
  /** A worker stopped for good (fenced, or its log behind its store); the thread's other workers keep running. */
  | { readonly type: 'failure'; readonly error: ThreadError }
  /** Stopped (or drained) and closed store and log; the thread exits next. */
  | { readonly type: 'done'; readonly stats: WorkerStats[] };

/** The worker threads' workers, as in-process ones (`RunningWorkers`), plus drain and the append wake-up. */
export interface WorkerThreads extends RunningWorkers {
  readonly threads: number;
  stats(): WorkerStats[];
  /**
   * Runs every worker until the log ends it observes when the message arrives are committed, then stops
   * the threads; rejects if a worker or thread failed.
   */
  drain(): Promise<void>;
  /** Call after each append to the embedded file log: wakes the threads' waiting readers (invariant 5). */
  appended(): void;
}

const STATS_EVERY_MS = 5;
const RESTART = 'Its workers have stopped; restart the process.';
const STOP_TIMEOUT_MS = 30_000;
const BOOT = new URL('./worker-thread-boot.mjs', import.meta.url);
const ENTRY = new URL('./worker-thread.ts', import.meta.url).href;

/**
 * The default number of worker threads: one per worker, at most one per core left after the serving
 * thread (a thread beyond the cores only adds context switches and its own copy of the definitions,
 * caches and connections), and at least one.
 */
export function defaultThreadCount(workers: number): number {
  return Math.max(1, Math.min(workers, availableParallelism() - 1));
}

/**
 * Starts `threads` worker threads (at most one per slot) running `slots` between them, round-robin, and
 * resolves once every thread has loaded the repo and opened its workers; a thread that fails to start
 * stops the others and rejects with its error.
 *
 * @example
 * const slots = planStreamWorkers({ sources: repo.sources, groupBys: repo.groupBys, partitions: 1 });
 * const pool = await startWorkerThreads({ repoDir: repo.dir, config, slots, threads: 1 });
 * await pool.run(abort.signal, (e) => console.error(e.message));
 */
export async function startWorkerThreads(opts: {
  readonly repoDir: string;
  readonly config: OnlineConfig;
  readonly slots: readonly WorkerSlot[];
  readonly threads: number;
  readonly worker?: RunnerWorkerOptions;
  /** A batch failed and is retried from the committed offset; default: console.error naming the worker. */
  readonly onError?: (error: Error, worker: string) => void;
}): Promise<WorkerThreads> {
  if (!Number.isInteger(opts.threads) || opts.threads < 1)
    throw new Error(`worker threads: expected a positive thread count, got ${opts.threads}`);
  const count = Math.min(opts.threads, opts.slots.length);
  const appends =
    opts.config.log === undefined || opts.config.log === 'embedded' ? new SharedArrayBuffer(4) : null;
  const counter = appends && new Int32Array(appends);
  const groups: WorkerSlot[][] = Array.from({ length: count }, () => []);
  opts.slots.forEach((s, i) => groups[i % count]!.push(s));
  const onError =
    opts.onError ?? ((e: Error, worker: string) => console.error(`stream worker ${worker}: ${e.message}`));
  const threads = groups.map((slots, i) => new WorkerThread(i, slots, opts, appends, onError));
  const started = await Promise.allSettled(threads.map((t) => t.ready));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(threads.map((t) => t.terminate()));
    throw (failed as PromiseRejectedResult).reason;
  }
  // In slot order: slot i runs in thread i % count, as its (i / count)th worker.
  const remote = opts.slots.map((_, i) => {
    const t = threads[i % count]!;
    const j = Math.floor(i / count);
    return { stats: () => t.stats[j]!, failing: () => t.failing[j] ?? null };
  });
  let used = false;
  const once = (what: string) => {
    if (used) throw new Error(`worker threads: ${what} after the threads were already run or drained`);
    used = true;
  };
  return {
    threads: count,
    workers: remote,
    stats: () => remote.map((w) => w.stats()),
    failing: () => remote.map((w) => w.failing()),
    async run(signal, onFailure) {
      once('run');
      await Promise.all(threads.map((t) => t.run(signal, onFailure)));
    },
    async drain() {
      once('drain');
      const failures: Error[] = [];
      await Promise.all(threads.map((t) => t.drain((e) => failures.push(e))));
      if (failures.length > 0) throw failures[0];
    },
    appended() {
      if (counter === null) return;
      Atomics.add(counter, 0, 1);
      Atomics.notify(counter, 0);
    },
  };
}

/** One thread and the latest stats of its workers. */
class WorkerThread {
  stats: WorkerStats[] = [];
  failing: (WorkerFailing | null)[] = [];
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private done = false;
  private stopped = false;
  /** Set when its death was already reported (`error` event) or caused here (`terminate`). */
  private gone = false;
  /** Failures seen before `run`/`drain` installed a listener, and the listener. */
  private pending: Error[] = [];
  private onFailure: ((e: Error) => void) | null = null;

  constructor(
    private readonly index: number,
    readonly slots: readonly WorkerSlot[],
    opts: {
      readonly repoDir: string;
      readonly config: OnlineConfig;
      readonly worker?: RunnerWorkerOptions;
    },
    appends: SharedArrayBuffer | null,
    onError: (e: Error, worker: string) => void,
  ) {
    const setup: ThreadSetup = {
      repoDir: opts.repoDir,
      config: opts.config,
      slots: slots.map((s) => ({
        topic: s.topic.name,
        partition: s.partition,
        groupBys: s.topic.groupBys.map(groupById),
      })),
      worker: opts.worker ?? {},
      statsEveryMs: STATS_EVERY_MS,
      appends,
    };
    this.worker = new Worker(BOOT, {
      workerData: { entry: ENTRY, setup },
      name: `tessera stream ${this.index}`,
    });
    let started: () => void;
    let startFailed: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      started = resolve;
      startFailed = reject;
    });
    let isReady = false;
    this.worker.on('message', (m: FromThread) => {
      switch (m.type) {
        case 'ready':
          this.stats = m.stats;
          isReady = true;
          started();
          break;
        case 'stats':
          this.stats = m.stats;
          break;
        case 'retry':
          onError(toError(m.error), m.worker);
          break;
        case 'failing':
          this.failing = m.failing;
          break;
        case 'failure':
          this.fail(toError(m.error));
          break;
        case 'done':
          this.stats = m.stats;
          this.done = true;
          break;
      }
    });
    this.worker.on('error', (e) => {
      if (!isReady)
        startFailed(new Error(`stream worker thread could not start: ${e.message}`, { cause: e }));
      else if (!this.gone) {
        this.gone = true;
        this.fail(new Error(`${this.describe()} crashed: ${e.message}. ${RESTART}`, { cause: e }));
      }
    });
    this.exited = new Promise<void>((resolve) =>
      this.worker.once('exit', (code) => {
        if (!isReady)
          startFailed(new Error(`stream worker thread exited with code ${code} before it started`));
        else if (!this.done && !this.gone && (code !== 0 || !this.stopped))
          this.fail(new Error(`${this.describe()} exited unexpectedly (code ${code}). ${RESTART}`));
        resolve();
      }),
    );
  }

  private describe(): string {
    const names = this.slots.map((s) => `${s.topic.name}/${s.partition}`).join(', ');
    return `stream worker thread ${this.index} (${names})`;
  }

  private fail(e: Error): void {
    if (this.onFailure) this.onFailure(e);
    else this.pending.push(e);
  }

  private listen(onFailure: (e: Error) => void): void {
    this.onFailure = onFailure;
    for (const e of this.pending.splice(0)) onFailure(e);
  }

  async run(signal: AbortSignal, onFailure: (e: Error) => void): Promise<void> {
    this.listen(onFailure);
    this.worker.postMessage({ type: 'run' } satisfies ToThread);
    const stop = () => this.stop(onFailure);
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    await this.exited;
    signal.removeEventListener('abort', stop);
  }

  async drain(onFailure: (e: Error) => void): Promise<void> {
    this.listen(onFailure);
    this.worker.postMessage({ type: 'drain' } satisfies ToThread);
    await this.exited;
    if (!this.done && !this.gone) onFailure(new Error(`${this.describe()} stopped before it drained`));
  }

  /** Invariant 4: the workers finish their current commit; a thread stuck past the timeout is terminated. */
  private stop(onFailure: (e: Error) => void): void {
    this.stopped = true;
    this.worker.postMessage({ type: 'stop' } satisfies ToThread);
    const timer = setTimeout(() => {
      onFailure(
        new Error(
          `${this.describe()} did not stop within ${STOP_TIMEOUT_MS / 1000} s of the stop request; terminated it`,
        ),
      );
      this.gone = true;
      void this.worker.terminate();
    }, STOP_TIMEOUT_MS);
    void this.exited.then(() => clearTimeout(timer));
  }

  async terminate(): Promise<void> {
    this.gone = true;
    await this.worker.terminate();
    await this.exited;
  }
}

function toError(e: ThreadError): Error {
  const error = new Error(e.message);
  if (e.stack !== undefined) error.stack = e.stack;
  return error;
}
