import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { loadRepo } from '../cli/load-repo.ts';
import { groupById } from './group-by-id.ts';
import type { EventLog, LogRecord } from './log/event-log.ts';
import { openConfiguredLog, openConfiguredStore } from './runtime-config.ts';
import { planStreamWorkers, startStreamWorkers, type StreamRunner } from './stream-runner.ts';
import type { FromThread, ThreadError, ThreadSetup, ToThread } from './worker-threads.ts';

/**
 * The inside of a stream worker thread (see worker-threads.ts for the protocol and its invariants): loads
 * the repo, opens store and log, starts the slots' workers, reports `ready`, then runs or drains them on
 * request and reports `done` once they stopped and store and log are closed. An error while starting is
 * thrown, so the thread dies and the starting thread sees it.
 */
async function main(setup: ThreadSetup, port: MessagePort): Promise<void> {
  const post = (m: FromThread) => port.postMessage(m);
  const repo = await loadRepo(setup.repoDir, { checkFiles: false });
  const planned = planStreamWorkers({
    sources: repo.sources,
    groupBys: repo.groupBys,
    partitions: setup.config.partitions ?? 1,
  });
  const slots = setup.slots.map((want) => {
    const slot = planned.find((s) => s.topic.name === want.topic && s.partition === want.partition);
    const ids = slot?.topic.groupBys.map(groupById) ?? [];
    if (!slot || ids.join() !== want.groupBys.join())
      throw new Error(
        `the definitions in ${setup.repoDir} changed while tessera started (topic '${want.topic}' updates ${want.groupBys.join(', ')} for the starting thread, ${ids.join(', ') || 'nothing'} for its stream worker thread); restart it`,
      );
    return slot;
  });

  const store = openConfiguredStore(setup.config);
  const opened = openConfiguredLog(setup.config);
  const log = setup.appends ? wakeOnAppend(opened, new Int32Array(setup.appends)) : opened;
  const close = async () => {
    await log.close();
    await store.close();
  };

  let runner: StreamRunner;
  let lastStats = 0;
  let statsTimer: NodeJS.Timeout | null = null;
  const publish = () => {
    statsTimer = null;
    lastStats = performance.now();
    post({ type: 'stats', stats: runner.stats() });
  };
  try {
    runner = await startStreamWorkers({
      sources: repo.sources,
      groupBys: repo.groupBys,
      log,
      store,
      slots,
      groupById,
      worker: {
        ...setup.worker,
        // Invariant 2: at most one stats message per statsEveryMs; the first commit after a pause at once.
        onCommit: () => {
          if (statsTimer !== null) return;
          const wait = lastStats + setup.statsEveryMs - performance.now();
          if (wait <= 0) publish();
          else statsTimer = setTimeout(publish, wait);
        },
      },
      onError: (e, w) => post({ type: 'retry', worker: `${w.topic}/${w.partition}`, error: threadError(e) }),
      onFailingChange: () => post({ type: 'failing', failing: runner.failing() }),
    });
  } catch (error) {
    await close();
    throw error;
  }
  post({ type: 'ready', stats: runner.stats() });

  const abort = new AbortController();
  let work: Promise<void> | null = null;
  const finish = async () => {
    await work;
    if (statsTimer !== null) clearTimeout(statsTimer);
    await close();
    post({ type: 'done', stats: runner.stats() });
    port.close();
  };
  port.on('message', (m: ToThread) => {
    if (m.type === 'stop') abort.abort();
    if (work !== null) return;
    if (m.type === 'stop') {
      work = Promise.resolve();
      void finish();
      return;
    }
    work =
      m.type === 'run'
        ? runner.run(abort.signal, (e) => post({ type: 'failure', error: threadError(e) }))
        : runner.drain();
    // A drain that throws (a fenced worker) is reported; close and `done` follow either way.
    work = work.catch((e: Error) => post({ type: 'failure', error: threadError(e) }));
    void finish();
  });
}

function threadError(e: Error): ThreadError {
  return { message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) };
}

/** Idle reads of a log whose appends happen in another thread wake on the shared append counter. */
const FALLBACK_POLL_MS = 10;

/** Atomics.waitAsync (Node >= 16) is missing from the ES2022 typings. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
      t: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/**
 * The file log's waiting `read`, woken by the serving thread's `appended()` (worker-threads.ts invariant
 * 5) instead of by polling; appends from other processes are still seen within `FALLBACK_POLL_MS`.
 */
function wakeOnAppend(log: EventLog, appends: Int32Array): EventLog {
  return {
    kind: log.kind,
    partitions: log.partitions,
    append: (topic, entries) => log.append(topic, entries),
    endOffsets: (topic) => log.endOffsets(topic),
    close: () => log.close(),
    async read(topic, partition, from, max, waitMs = 0): Promise<LogRecord[]> {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const seen = Atomics.load(appends, 0);
        const out = await log.read(topic, partition, from, max);
        const left = deadline - Date.now();
        if (out.length > 0 || left <= 0) return out;
        const wait = waitAsync(appends, 0, seen, Math.min(left, FALLBACK_POLL_MS));
        if (wait.async) await wait.value;
      }
    },
  };
}

if (parentPort === null) throw new Error('worker-thread.ts runs inside a stream worker thread only');
const { setup } = workerData as { setup: ThreadSetup };
await main(setup, parentPort);
