/**
 * Poison events (worker invariant 10): records a producer wrote to the log directly, bypassing ingest's
 * checks, that no commit could ever apply. They used to fail every commit of their partition (a key too
 * long for LMDB: lmdb throws on the put) or every batch (a record that is not an event object), so no
 * later event was ever applied. Now they are counted, warned about and skipped; store errors still retry.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { decodeLogEvent, logEventCheck } from '../../src/online/log-event-check.ts';
import { MAX_KEY_BYTES } from '../../src/online/lmdb-store.ts';
import { openStore } from '../../src/online/open-store.ts';
import { entityKeyRoom, type OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { validateEvent } from '../../src/online/validate-event.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startRedis } from '../support/servers.ts';
import { byUser, byUserKind, events, groupBys, randomEvents, rng, T0, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';
import { beforeCommit } from './store-hooks.ts';

const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const c of cleanups) c();
});

function lmdbStore(): OnlineStore {
  const d = tempDir();
  cleanups.push(d.remove);
  return openStore({ kind: 'lmdb', path: d.path });
}

function fileLog() {
  const d = tempDir();
  cleanups.push(d.remove);
  return openFileLog(d.path);
}

const [topic] = streamTopics(events, groupBys, 1);

/** A stream worker of the topic's partition 0 whose warnings are collected. */
async function warnedWorker(log: EventLog, store: OnlineStore, batchSize?: number) {
  const warnings: string[] = [];
  const w = await createStreamWorker({
    log,
    store,
    topic,
    partition: 0,
    ...(batchSize === undefined ? {} : { batchSize }),
    onWarning: (m) => warnings.push(m),
  });
  return { w, warnings };
}

/** Appends rows as a producer writing to the broker directly would: no validation, no key check. */
async function produceDirectly(log: EventLog, rows: readonly unknown[]): Promise<void> {
  await log.append(
    topic.name,
    rows.map((event) => ({ partitionKey: 'p', event: event as Row })),
  );
}

describe('an event whose key is too long for the LMDB store, written to the log directly', () => {
  it('is counted per group-by and skipped; the events after it are applied', async () => {
    const store = lmdbStore();
    const log = fileLog();
    const good = randomEvents(3, 200);
    const roomUser = entityKeyRoom(MAX_KEY_BYTES, groupById(byUser));
    // Too long for both group-bys.
    const tooLong: Row = { user: 'x'.repeat(3000), kind: 'a', amount: 1, ts: T0 + 60_000 };
    // Exactly fits by_user; by_user_kind's key adds "\u001fa", so it is too long there only.
    const fitsOne: Row = { user: 'y'.repeat(roomUser), kind: 'a', amount: 2, ts: T0 + 120_000 };
    expect(entityKeyRoom(MAX_KEY_BYTES, groupById(byUserKind))).toBeLessThan(roomUser + 2);
    await ingestEvents(log, events, groupBys, good.slice(0, 100));
    await produceDirectly(log, [tooLong, fitsOne]);
    await ingestEvents(log, events, groupBys, good.slice(100));

    const { w, warnings } = await warnedWorker(log, store, 64);
    await w.drain(); // threw before: lmdb refused the key on every commit of the batch holding it
    const s = w.stats();
    expect(s.nextOffset).toBe(202);
    expect(s.groupBys.by_user.keyTooLong).toBe(1);
    expect(s.groupBys.by_user_kind.keyTooLong).toBe(2);
    expect(s.invalid).toBe(0);
    const kept = [...good.slice(0, 100), fitsOne, ...good.slice(100)];
    expect(s.groupBys.by_user.applied).toBe(kept.filter((e) => e.kind !== 'ignored').length);
    await expectUsersMatchOracle(store, kept);

    // One warning per group-by, naming source, topic/partition, group-by, offset, sizes and the fix.
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /^stream worker events\/0 \(source 'events'\): skipped 1 event\(s\) whose key of group-by 'by_user' is too long for the lmdb store, counted as 'keyTooLong' .* at offset 100: 3000 bytes, more than the \d+ .*a hash of 'user'.*--store redis/,
    );
    expect(warnings[1]).toMatch(
      /skipped 2 event\(s\) whose key of group-by 'by_user_kind' .* at offset 100: 3002 bytes/,
    );

    // Persisted with the offset: a restarted worker reports the same counts and skips nothing again.
    const again = await createStreamWorker({ log, store, topic, partition: 0 });
    expect(again.stats().groupBys.by_user.keyTooLong).toBe(1);
    expect(again.stats().groupBys.by_user_kind.keyTooLong).toBe(2);
    await log.close();
    await store.close();
  });

  it('is counted once when its batch is redone after a transient store error (not skipped twice, not lost)', async () => {
    const inner = lmdbStore();
    // The first commit fails like a dropped connection (nothing applied): the worker must retry, not skip.
    const store = beforeCommit(inner, (n) => {
      if (n === 1) throw new Error('connection reset');
    });
    const log = fileLog();
    const good = randomEvents(5, 50);
    await produceDirectly(log, [{ user: 'z'.repeat(2500), kind: null, amount: 1, ts: T0 }]);
    await ingestEvents(log, events, groupBys, good);
    const w = await createStreamWorker({ log, store, topic, partition: 0, onWarning: () => {} });
    await expect(w.step()).rejects.toThrow('connection reset');
    expect(w.stats().nextOffset).toBe(0);
    await w.drain();
    expect(w.stats().groupBys.by_user.keyTooLong).toBe(1);
    expect(w.stats().groupBys.by_user_kind.keyTooLong).toBe(0); // null kind: a null key, not a long one
    await expectUsersMatchOracle(store, good);
    await log.close();
    await inner.close();
  });
});

describe.skipIf(!redis)('on the Redis store', () => {
  it('a long key is no problem: applied, not counted', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'poison:' });
    const log = fileLog();
    const long: Row = { user: 'x'.repeat(3000), kind: 'a', amount: 1, ts: T0 };
    const all = [long, ...randomEvents(4, 30)];
    await produceDirectly(log, all);
    const w = await createStreamWorker({ log, store, topic, partition: 0 });
    await w.drain();
    expect(w.stats().groupBys.by_user.keyTooLong).toBe(0);
    expect(w.stats().groupBys.by_user_kind.keyTooLong).toBe(0);
    await expectUsersMatchOracle(store, all);
    await log.close();
    await store.close();
  });
});

describe.skipIf(!redis)('on a Redis Streams log', () => {
  it('a record that is not JSON and a key too long for LMDB are counted and skipped, not retried', async () => {
    const store = lmdbStore();
    const log = openRedisStreamLog(redis!.url, { prefix: 'poison-log:' });
    const raw = new Redis(redis!.url);
    const good = randomEvents(6, 80);
    await ingestEvents(log, events, groupBys, good.slice(0, 40));
    // Another producer's record, at the next offset as the log numbers them (log:{topic:p}, field e).
    const next = await raw.incr(`poison-log:log:{${topic.name}:0}:next`);
    await raw.xadd(`poison-log:log:{${topic.name}:0}`, `0-${next}`, 'e', '{"user": "u1", ts: 1');
    await produceDirectly(log, [{ user: 'x'.repeat(2500), kind: 'a', amount: 1, ts: T0 }]);
    await ingestEvents(log, events, groupBys, good.slice(40));
    const { w, warnings } = await warnedWorker(log, store, 30);
    await w.drain(); // threw before: JSON.parse failed on every read of the partition
    expect(w.stats().nextOffset).toBe(82);
    expect(w.stats().invalid).toBe(1);
    expect(w.stats().groupBys.by_user.keyTooLong).toBe(1);
    await expectUsersMatchOracle(store, good);
    expect(warnings.join('\n')).toMatch(
      /skipped 1 record\(s\) that are not valid events .* the first: offset 40: the record is not JSON \(.+; it starts "\{\\"user\\": \\"u1\\", ts: 1"\)/,
    );
    raw.disconnect();
    await log.close();
    await store.close();
  });
});

describe('records that are not valid events, written to the log directly', () => {
  it('are counted as invalid and skipped; valid but unnormalized ones are normalized and applied', async () => {
    const store = lmdbStore();
    const log = fileLog();
    const good = randomEvents(9, 120);
    const bad: unknown[] = [
      null, // not an object: reading its time column threw before
      42,
      { user: 'u1', kind: 'a', amount: 1, ts: 'yesterday' },
      { user: { id: 1 }, kind: 'a', amount: 1, ts: T0 },
      { user: 'u1', kind: 'a', amount: 'lots', ts: T0 },
      { user: 'u1', kind: 'a', amount: 1 }, // no time
    ];
    // ISO-8601 time text is valid input (ingest would have stored epoch ms): normalized and applied.
    const iso = { user: 'u2', kind: 'a', amount: 5, ts: new Date(T0 + 30_000).toISOString() };
    await ingestEvents(log, events, groupBys, good.slice(0, 60));
    await produceDirectly(log, [...bad, iso]);
    await ingestEvents(log, events, groupBys, good.slice(60));
    const { w, warnings } = await warnedWorker(log, store);
    await w.drain();
    const s = w.stats();
    expect(s.nextOffset).toBe(good.length + bad.length + 1);
    expect(s.invalid).toBe(bad.length);
    expect(s.groupBys.by_user.invalid).toBe(bad.length);
    expect(s.groupBys.by_user_kind.invalid).toBe(bad.length);
    const kept = [...good.slice(0, 60), { ...iso, ts: T0 + 30_000 }, ...good.slice(60)];
    await expectUsersMatchOracle(store, kept);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^stream worker events\/0 \(source 'events'\): skipped 6 record\(s\) that are not valid events of the source, counted as 'invalid' .*; the first: offset 60: expected a JSON object, got null\. Send one object per event\.$/,
    );
    const again = await createStreamWorker({ log, store, topic, partition: 0 });
    expect(again.stats().groupBys.by_user.invalid).toBe(bad.length);
    await log.close();
    await store.close();
  });
});

describe('logEventCheck', () => {
  const check = logEventCheck(events);

  it('names the offset, column, problem and fix', () => {
    expect(check({ user: 'u', kind: null, amount: 'x', ts: 1 } as unknown as Row, 7)).toBe(
      `offset 7, column 'amount': expected a number, got "x" (string). Send a finite JSON number.`,
    );
    expect(check(decodeLogEvent('{"user": "u", '), 3)).toMatch(
      /^offset 3: the record is not JSON \(.+; it starts "\{\\"user\\": \\"u\\", "\)\. Have its producer write one JSON object per event/,
    );
    expect(check(decodeLogEvent(null), 4)).toBe(
      'offset 4: the record has no value. Have its producer write one JSON object per event, as POST /v1/events does',
    );
    expect(decodeLogEvent('{"user":"u","ts":1}')).toEqual({ user: 'u', ts: 1 });
  });

  it('accepts exactly what validateEvent accepts, with its normalized values', () => {
    const r = rng(17);
    const values: unknown[] = [
      'a',
      '',
      '2024-01-01T00:00:00Z',
      '1704067200000',
      0,
      1.5,
      -3,
      2 ** 53,
      Number.NaN,
      true,
      null,
      undefined,
      { a: 1 },
      [1],
    ];
    const pick = () => values[Math.floor(r() * values.length)];
    for (let i = 0; i < 3000; i++) {
      const raw: Record<string, unknown> = { user: pick(), kind: pick(), amount: pick(), ts: pick() };
      const before = structuredClone(raw);
      const expected = validateEvent(events, before, 0, 'test');
      const row = { ...raw } as Row;
      const why = check(row, 0);
      expect(why === null, JSON.stringify(raw)).toBe(expected.row !== undefined);
      if (expected.row !== undefined)
        for (const c of Object.keys(events.schema)) expect(row[c] ?? null).toEqual(expected.row[c]);
    }
  });
});
