/**
 * Worker invariant 11: a committed offset past the end of the log partition (the log was deleted and
 * recreated, truncated, or is another log) stops the worker with an error naming both, instead of waiting
 * and then silently skipping the new log's first events up to that offset. Checked at open and, rate-limited,
 * when an idle read comes back empty.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function dir(): string {
  const d = tempDir();
  cleanups.push(d.remove);
  return d.path;
}

const [topic] = streamTopics(events, groupBys, 1);

/** A store holding offset 30 of `topic`/0, committed by a worker that drained 30 events of its own log. */
async function storeAt30(): Promise<{ store: OnlineStore; log: EventLog }> {
  const store = openStore({ kind: 'lmdb', path: dir() });
  const log = openFileLog(dir());
  await ingestEvents(log, events, groupBys, randomEvents(1, 30));
  const w = await createStreamWorker({ log, store, topic, partition: 0 });
  await w.drain();
  expect(w.stats().nextOffset).toBe(30);
  return { store, log };
}

/**
 * Runs a worker of `topic`/0 on `log` in the background (polling every 20 ms), collecting the errors it
 * retries and what `run` settles with (null: it ran until aborted; else the error it stopped with).
 */
async function runWorker(log: EventLog, store: OnlineStore) {
  const errors: Error[] = [];
  const w = await createStreamWorker({
    log,
    store,
    topic,
    partition: 0,
    pollMs: 20,
    onError: (e) => errors.push(e),
  });
  const abort = new AbortController();
  const running = w.run(abort.signal).then(
    () => null,
    (e: Error) => e,
  );
  return { w, errors, abort, running };
}

const BEHIND = (end: number) =>
  new RegExp(
    `the store's committed offset 30 is past the end of file log topic '${topic.name}' partition 0 \\(${end} records\\)\\. The log was deleted, recreated or truncated.*different log.*Point the worker at the log the store was built from.*tessera upload`,
  );

// Concurrent: most of each test is waiting out the worker's once-a-second check of the log's end, and each
// has its own log, store and worker.
describe.concurrent('a log that ends before the committed offset (worker invariant 11)', () => {
  it('makes a worker refuse to open; on the log it committed against it opens', async () => {
    const { store, log } = await storeAt30();
    const freshDir = dir();
    const fresh = openFileLog(freshDir);
    await expect(createStreamWorker({ log: fresh, store, topic, partition: 0 })).rejects.toThrow(
      new RegExp(`stream worker ${topic.name}/0 cannot open: ${BEHIND(0).source}`),
    );
    // Grown, but not past the offset: still refused (reading on would skip its first 30 events).
    await ingestEvents(fresh, events, groupBys, randomEvents(2, 10));
    // (A new instance, as a restarted process opens it.)
    const reader = openFileLog(freshDir);
    await expect(createStreamWorker({ log: reader, store, topic, partition: 0 })).rejects.toThrow(BEHIND(10));
    const w = await createStreamWorker({ log, store, topic, partition: 0 });
    expect(w.stats().nextOffset).toBe(30);
    await Promise.all([log.close(), fresh.close(), reader.close(), store.close()]);
  });

  it('stops an idle running worker for good within about two seconds of the log being replaced', async () => {
    const { store, log: original } = await storeAt30();
    // The worker's log, which the test swaps under it (as a JetStream stream deleted and re-created).
    let current: EventLog = original;
    const log: EventLog = {
      kind: 'file',
      partitions: 1,
      append: (t, e) => current.append(t, e),
      read: (t, p, from, max, waitMs) => current.read(t, p, from, max, waitMs),
      endOffsets: (t) => current.endOffsets(t),
      close: async () => {},
    };
    let ends = 0;
    const counted: EventLog = {
      ...log,
      endOffsets: (t) => {
        ends++;
        return log.endOffsets(t);
      },
    };
    const { w, errors, abort, running } = await runWorker(counted, store);
    // Idle on the right log: it keeps running, and compares the log's end at most about once a second.
    const before = ends;
    await new Promise((r) => setTimeout(r, 1500));
    expect(ends - before).toBeGreaterThanOrEqual(1);
    expect(ends - before).toBeLessThanOrEqual(2);
    const fresh = openFileLog(dir());
    await ingestEvents(fresh, events, groupBys, randomEvents(3, 5));
    current = fresh;
    const swapped = performance.now();
    const stopped = await Promise.race([
      running,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 4000)),
    ]);
    abort.abort();
    expect(stopped).toBeInstanceOf(Error);
    expect((stopped as Error).message).toMatch(
      new RegExp(`stream worker ${topic.name}/0 stopped: ${BEHIND(5).source}`),
    );
    // The next check, then a second one a second later, confirm it.
    expect(performance.now() - swapped).toBeLessThan(3000);
    expect(errors).toEqual([]);
    // Nothing of the new log was applied, and the worker stays stopped.
    expect(w.stats().nextOffset).toBe(30);
    expect((await store.readOffsets([`stream/${topic.name}/0`]))[`stream/${topic.name}/0`]).toBe('30');
    await expect(w.step()).rejects.toThrow(BEHIND(5));
    await Promise.all([original.close(), fresh.close(), store.close()]);
  });

  it('idle workers share the end offsets of their topic, asked again less often when slow to answer', async () => {
    const inner = openFileLog(dir(), { partitions: 4 });
    let calls = 0;
    const slow: EventLog = {
      kind: 'file',
      partitions: 4,
      append: (t, e) => inner.append(t, e),
      read: (t, p, from, max, waitMs) => inner.read(t, p, from, max, waitMs),
      // 30 ms an answer: asked again no sooner than 3 s later (100 times as long).
      endOffsets: async (t) => {
        calls++;
        await new Promise((r) => setTimeout(r, 30));
        return inner.endOffsets(t);
      },
      close: () => inner.close(),
    };
    const store = openStore({ kind: 'lmdb', path: dir() });
    const [topic4] = streamTopics(events, groupBys, 4);
    const abort = new AbortController();
    const runs: Promise<void>[] = [];
    for (let p = 0; p < 4; p++) {
      const w = await createStreamWorker({ log: slow, store, topic: topic4, partition: p, pollMs: 20 });
      runs.push(w.run(abort.signal));
    }
    await new Promise((r) => setTimeout(r, 2500));
    abort.abort();
    await Promise.all(runs);
    // Each worker alone would have asked twice.
    expect(calls).toBe(1);
    await Promise.all([slow.close(), store.close()]);
  });

  it('an answer asked before a commit never stops the worker that made it', async () => {
    const inner = openFileLog(dir(), { partitions: 2 });
    let calls = 0;
    const log: EventLog = {
      kind: 'file',
      partitions: 2,
      append: (t, e) => inner.append(t, e),
      read: (t, p, from, max, waitMs) => inner.read(t, p, from, max, waitMs),
      endOffsets: (t) => {
        calls++;
        return inner.endOffsets(t);
      },
      close: () => inner.close(),
    };
    const store = openStore({ kind: 'lmdb', path: dir() });
    const [topic2] = streamTopics(events, groupBys, 2);
    const open = (partition: number) =>
      createStreamWorker({ log, store, topic: topic2, partition, pollMs: 1 });
    const [w0, w1] = [await open(0), await open(1)];
    await new Promise((r) => setTimeout(r, 1100));
    expect(await w1.step()).toBe(0); // idle: asks for the ends, [0, 0], shared with w0
    expect(calls).toBe(1);
    await ingestEvents(log, events, groupBys, randomEvents(4, 40));
    const [end0] = await inner.endOffsets(topic2.name);
    expect(end0).toBeGreaterThan(0);
    while ((await w0.step()) > 0); // commits end0, then idle: the shared answer (0) predates its commit
    expect(w0.stats().nextOffset).toBe(end0);
    expect(calls).toBe(2); // asked again, and carries on
    expect(await w0.step()).toBe(0);
    await Promise.all([log.close(), store.close()]);
  });
  it("with logBehindAtOpen 'stop' opens stopped: stats work, step, drain and run reject with the reason", async () => {
    const { store, log } = await storeAt30();
    const fresh = openFileLog(dir());
    const w = await createStreamWorker({ log: fresh, store, topic, partition: 0, logBehindAtOpen: 'stop' });
    expect(w.stats().nextOffset).toBe(30);
    const refused = new RegExp(`stream worker ${topic.name}/0 cannot open: ${BEHIND(0).source}`);
    await expect(w.step()).rejects.toThrow(refused);
    await expect(w.drain()).rejects.toThrow(refused);
    await expect(w.run(new AbortController().signal)).rejects.toThrow(refused);
    await Promise.all([log.close(), fresh.close(), store.close()]);
  });

  it('stops a worker whose reader refuses an offset past the end itself (as NATS and Kafka readers do)', async () => {
    const { store, log: original } = await storeAt30();
    let current: EventLog = original;
    const log: EventLog = {
      kind: 'file',
      partitions: 1,
      append: (t, e) => current.append(t, e),
      read: async (t, p, from, max, waitMs) => {
        const [end] = await current.endOffsets(t);
        if (from > end!) throw new Error(`offset ${from} is past the end of partition ${p} (${end} records)`);
        return current.read(t, p, from, max, waitMs);
      },
      endOffsets: (t) => current.endOffsets(t),
      close: async () => {},
    };
    const { w, errors, abort, running } = await runWorker(log, store);
    await new Promise((r) => setTimeout(r, 300));
    const fresh = openFileLog(dir());
    await ingestEvents(fresh, events, groupBys, randomEvents(5, 5));
    current = fresh;
    const stopped = await Promise.race([
      running,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 5000)),
    ]);
    abort.abort();
    expect(stopped).toBeInstanceOf(Error);
    expect((stopped as Error).message).toMatch(
      new RegExp(`stream worker ${topic.name}/0 stopped: ${BEHIND(5).source}`),
    );
    // Until then its failed reads were retried (and reported) as any failed read.
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => /offset 30 is past the end of partition 0/.test(e.message))).toBe(true);
    expect(w.stats().nextOffset).toBe(30);
    await Promise.all([original.close(), fresh.close(), store.close()]);
  });

  it('a partition missing from an answer, or one answer alone, does not stop the worker', async () => {
    const { store, log: inner } = await storeAt30();
    const answers: (number[] | null)[] = [
      [], // at open: a partial answer (a broker that did not report the partition)
      [0], // the first idle check: a glitch
    ];
    let calls = 0;
    const log: EventLog = {
      kind: 'file',
      partitions: 1,
      append: (t, e) => inner.append(t, e),
      read: (t, p, from, max, waitMs) => inner.read(t, p, from, max, waitMs),
      endOffsets: async (t) => {
        calls++;
        return answers.shift() ?? inner.endOffsets(t);
      },
      close: async () => {},
    };
    const { w, errors, abort, running } = await runWorker(log, store);
    await new Promise((r) => setTimeout(r, 3500));
    abort.abort();
    expect(await running).toBeNull();
    expect(calls).toBeGreaterThanOrEqual(3); // open, the glitch, and the answers after it
    expect(errors).toEqual([]);
    await Promise.all([inner.close(), store.close()]);
  });

  it('checks about every second whatever the answer at open or one slow answer took (reconnects)', async () => {
    const { store, log: inner } = await storeAt30();
    let calls = 0;
    const log: EventLog = {
      kind: 'file',
      partitions: 1,
      append: (t, e) => inner.append(t, e),
      read: (t, p, from, max, waitMs) => inner.read(t, p, from, max, waitMs),
      endOffsets: async (t) => {
        calls++;
        // Open: 600 ms (connecting); the third: 300 ms (a reconnect). Uncounted, each would space the checks
        // 100 times as long (60 s, 30 s).
        // The others answer at once.
        const ms = calls === 1 ? 600 : calls === 3 ? 300 : 0;
        if (ms > 0) await new Promise((r) => setTimeout(r, ms));
        return t === topic.name ? [30] : inner.endOffsets(t);
      },
      close: async () => {},
    };
    const { w, errors, abort, running } = await runWorker(log, store);
    await new Promise((r) => setTimeout(r, 4500));
    abort.abort();
    expect(await running).toBeNull(); // not stopped (a stop would have rejected run)
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(errors).toEqual([]);
    await Promise.all([inner.close(), store.close()]);
  });
});
