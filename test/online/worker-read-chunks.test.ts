/**
 * A stream worker fills each batch with several log reads (`readChunk` records each) so that parsed rows
 * die young. Commits must not depend on it: a batch read in chunks commits exactly what one read of the
 * whole batch commits (same boundaries, tiles, runs, offsets, watermark, counters and warnings).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { CommitBatch, OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker, type WorkerOptions } from '../../src/online/worker.ts';
import { events, groupBys, randomEvents, T0, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';
import { beforeCommit } from './store-hooks.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function dir(): string {
  const d = tempDir();
  cleanups.push(d.remove);
  return d.path;
}

const [topic] = streamTopics(events, groupBys, 1);

/** Every commit a store receives, as text (bytes in hex; counters without their CPU times). */
function recordingStore(inner: OnlineStore, commits: string[]): OnlineStore {
  const hex = (b: Uint8Array | null) => (b === null ? 'null' : Buffer.from(b).toString('hex'));
  return beforeCommit(inner, (_n, b: CommitBatch) => {
    const offsets: Record<string, string> = { ...b.offsets };
    // Commit ids start with the worker's random id; their commit numbers must agree.
    for (const [name, value] of Object.entries(offsets))
      if (name.startsWith('commit/')) offsets[name] = value.split('.')[1]!;
      else if (name.startsWith('counters/'))
        offsets[name] = JSON.stringify(
          Object.fromEntries(
            Object.entries(JSON.parse(value) as Record<string, object>).map(([g, c]) => [
              g,
              { ...c, cpuMs: 0 },
            ]),
          ),
        );
    commits.push(
      JSON.stringify({
        tiles: b.tiles.map((t) => [t.groupBy, t.key, t.level, t.start, hex(t.bytes)]),
        runs: (b.runs ?? []).map((r) => [r.groupBy, r.key, hex(r.bytes)]),
        offsets,
        expect: b.expect,
      }),
    );
  });
}

/** Drains `log` into a fresh LMDB store; returns the commits, warnings and stats (CPU times zeroed). */
async function drainWith(log: EventLog, opts: Partial<WorkerOptions>) {
  const inner = openStore({ kind: 'lmdb', path: dir() });
  const commits: string[] = [];
  const warnings: string[] = [];
  const w = await createStreamWorker({
    log,
    store: recordingStore(inner, commits),
    topic,
    partition: 0,
    onWarning: (m) => warnings.push(m),
    maxRunBytes: 96, // roll-ups in most batches
    ...opts,
  });
  await w.drain();
  const stats = JSON.parse(JSON.stringify(w.stats()));
  for (const c of Object.values(stats.groupBys) as { cpuMs: number }[]) c.cpuMs = 0;
  return { commits, warnings, stats, store: inner };
}

describe('a batch filled by several log reads', () => {
  it('commits exactly as one read of the whole batch, poison, late and filtered events included', async () => {
    const log = openFileLog(dir(), { segmentBytes: 4096 }); // reads cross segments too
    const good = randomEvents(21, 900, 40);
    const poison: unknown[] = [
      null,
      { user: 'u1', kind: 'a', amount: 'lots', ts: T0 },
      { user: 'x'.repeat(3000), kind: 'a', amount: 1, ts: T0 + 1 }, // too long for LMDB
      { user: 'w'.repeat(2800), kind: 'a', amount: 1, ts: T0 + 1 }, // the warning names the first
      { user: 'u2', kind: 'y'.repeat(3000), amount: 1, ts: T0 + 2 }, // too long for by_user_kind only
    ];
    const frames: [number, number, boolean][] = [];
    forFrames(good.length, (from, to, poisoned) => frames.push([from, to, poisoned]));
    for (const [from, to, poisoned] of frames) {
      await ingestEvents(log, events, groupBys, good.slice(from, to));
      if (poisoned)
        await log.append(
          topic.name,
          poison.map((event) => ({ partitionKey: 'p', event: event as Row })),
        );
    }
    const whole = await drainWith(log, { batchSize: 128, readChunk: 128 });
    for (const readChunk of [1, 7, 50]) {
      const chunked = await drainWith(log, { batchSize: 128, readChunk });
      expect(chunked.commits).toEqual(whole.commits);
      expect(chunked.warnings).toEqual(whole.warnings);
      expect(chunked.stats).toEqual(whole.stats);
      await chunked.store.close();
    }
    // The case is not vacuous: several batches, each kind of skipped event, and the values are right.
    expect(whole.commits.length).toBeGreaterThan(5);
    expect(whole.stats.invalid).toBeGreaterThan(0);
    expect(whole.stats.filtered).toBeGreaterThan(0);
    expect(whole.stats.groupBys.by_user.keyTooLong).toBeGreaterThan(0);
    expect(whole.stats.groupBys.by_user_kind.keyTooLong).toBeGreaterThan(
      whole.stats.groupBys.by_user.keyTooLong,
    );
    expect(whole.stats.groupBys.by_user_kind.lateBeyondRetention).toBeGreaterThan(0);
    expect(whole.warnings.some((m) => /the first at offset \d+: 3000 bytes/.test(m))).toBe(true);
    // by_user (what the oracle checks) applies the good events and poison[4], whose user fits the store.
    const kept: Row[] = [];
    forFrames(good.length, (from, to, poisoned) => {
      kept.push(...good.slice(from, to));
      if (poisoned) kept.push(poison[4] as Row);
    });
    await expectUsersMatchOracle(whole.store, kept);
    await whole.store.close();
    await log.close();
  });

  it('with events big enough to lower the batch size (maxBatchBytes), keeps the same boundaries', async () => {
    const log = openFileLog(dir());
    const rows = randomEvents(22, 600, 15).map((e, i) => ({
      ...e,
      kind: i % 3 === 0 ? 'k'.repeat(200) : e.kind,
    }));
    for (let i = 0; i < rows.length; i += 75)
      await ingestEvents(log, events, groupBys, rows.slice(i, i + 75));
    const opts = { batchSize: 200, maxBatchBytes: 12_000 };
    const whole = await drainWith(log, { ...opts, readChunk: 200 });
    const chunked = await drainWith(log, { ...opts, readChunk: 16 });
    expect(chunked.commits).toEqual(whole.commits);
    expect(chunked.stats).toEqual(whole.stats);
    // Batches were cut by size, not only by count.
    const ends = whole.commits.map((c) => Number(Object.values(JSON.parse(c).offsets)[0]));
    expect(new Set(ends.map((e, i) => e - (ends[i - 1] ?? 0))).size).toBeGreaterThan(2);
    await whole.store.close();
    await chunked.store.close();
    await log.close();
  });

  it('sizes the batch after a short one (a worker catching up) from its events, not from one or two', async () => {
    const log = openFileLog(dir());
    const store = openStore({ kind: 'lmdb', path: dir() });
    const sizes: number[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 200,
      maxBatchBytes: 20_000,
      readChunk: 16,
      onCommit: (c) => sizes.push(c.records),
    });
    // 20 events, two reads: a batch of 200 samples every 12th record, here records 0 and 12 only: both small.
    const big = (e: Row, i: number) => (i === 0 || i === 12 ? e : { ...e, kind: 'k'.repeat(2000) });
    const rows = randomEvents(23, 220, 10);
    await ingestEvents(log, events, groupBys, rows.slice(0, 20).map(big));
    await w.drain();
    await ingestEvents(
      log,
      events,
      groupBys,
      rows.slice(20).map((e) => ({ ...e, kind: 'k'.repeat(2000) })),
    );
    await w.drain();
    expect(sizes[0]).toBe(20);
    // ~2 KB events under a 20 KB budget: about 10 per batch (it was 200 from the two small ones).
    expect(sizes[1]).toBeLessThanOrEqual(14);
    await store.close();
    await log.close();
  });

  it('commits the records read before a later read of the batch fails, and then reports the error', async () => {
    const inner = openFileLog(dir());
    await ingestEvents(inner, events, groupBys, randomEvents(24, 100, 10));
    // e.g. a Kafka partition with a gap right after a full chunk: reading from offset 32 fails.
    const log: EventLog = {
      ...inner,
      read: (t, p, from, max, waitMs) =>
        from === 32 ? Promise.reject(new Error('offset 32 is gone')) : inner.read(t, p, from, max, waitMs),
      endOffsets: (t) => inner.endOffsets(t),
    } as EventLog;
    const store = openStore({ kind: 'lmdb', path: dir() });
    const ends: number[] = [];
    const warnings: string[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 64,
      readChunk: 16,
      onCommit: (c) => ends.push(c.nextOffset),
      onWarning: (m) => warnings.push(m),
    });
    expect(await w.step()).toBe(32);
    // Said once the batch is committed (a transient error would otherwise leave no trace).
    expect(warnings).toEqual([
      expect.stringMatching(/from offset 32 failed \(offset 32 is gone\); the batch ends/),
    ]);
    await expect(w.step()).rejects.toThrow('offset 32 is gone');
    expect(ends).toEqual([32]);
    expect(w.stats().recordsRead).toBe(32);
    await store.close();
    await inner.close();
  });
});

/**
 * Frames of assorted sizes over `n` events (so chunks start and end inside frames), every other one followed by
 * a frame of poison records.
 */
function forFrames(n: number, visit: (from: number, to: number, poisoned: boolean) => void): void {
  const sizes = [1, 37, 150, 5, 211, 64, 90, 342];
  for (let from = 0, k = 0; from < n; k++) {
    const to = Math.min(n, from + sizes[k % sizes.length]);
    visit(from, to, k % 2 === 1);
    from = to;
  }
}

describe('file log reads that stop inside a frame', () => {
  it('return the same records as one read, also when a read goes back inside a partly read frame', async () => {
    const log = openFileLog(dir());
    const rows = randomEvents(23, 500);
    await log.append(
      't',
      rows.slice(0, 300).map((event) => ({ partitionKey: 'p', event })),
    ); // one frame
    await log.append(
      't',
      rows.slice(300).map((event) => ({ partitionKey: 'p', event })),
    );
    const whole = await log.read('t', 0, 0, 1000);
    expect(whole.map((r) => r.event)).toEqual(rows);
    const pieces = [];
    for (let from = 0; from < 500; ) {
      const got = await log.read('t', 0, from, 13);
      pieces.push(...got);
      from += got.length;
      if (from === 130) {
        // A worker redoing its batch reads from its committed offset again, inside the frame.
        expect(await log.read('t', 0, 40, 3)).toEqual(whole.slice(40, 43));
      }
    }
    expect(pieces).toEqual(whole);
    expect(await log.read('t', 0, 299, 3)).toEqual(whole.slice(299, 302));
    await log.close();
  });
});
