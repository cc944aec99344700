/**
 * Audit finding: with `--partitions N > 1` a POSTed batch is appended topic by topic (one topic per key
 * list, topics.ts) in separate log appends, so a crash between two appends leaves the batch in some
 * group-bys and not in others: an unacknowledged batch half-applied across group-bys (and a client retry
 * double-counts it in the first ones). DESIGN §1: state is never left half-written. Seen end to end in
 * serve-oracle.test.ts (SIGKILL during a POST with --partitions 2: `user` had the batch, `uc` did not).
 * Here the crash is a log whose second append fails.
 */
import { describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy } from '../../src/index.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog, LogEntry } from '../../src/online/log/event-log.ts';

const tx = eventSource({
  name: 'tx',
  path: 'data/tx.jsonl',
  timeColumn: 'ts',
  schema: { user_id: col.string(), country: col.string(), ts: col.timestamp() },
});
const byUser = groupBy({
  name: 'user',
  source: tx,
  keys: ['user_id'],
  aggregations: [count({ windows: ['1h'] })],
});
const byUserCountry = groupBy({
  name: 'uc',
  source: tx,
  keys: ['user_id', 'country'],
  aggregations: [count({ windows: ['1h'] })],
});

/** A 2-partition log that stores appends in memory and "crashes" (throws) on the append number `crashAt`. */
function crashingLog(crashAt: number): EventLog & { topics: Map<string, number> } {
  let appends = 0;
  const topics = new Map<string, number>();
  return {
    kind: 'file',
    partitions: 2,
    topics,
    async append(topic: string, entries: readonly LogEntry[]) {
      if (++appends === crashAt) throw new Error('process killed');
      topics.set(topic, (topics.get(topic) ?? 0) + entries.length);
      return [{ partition: 0, first: 0, count: entries.length }];
    },
    async read() {
      return [];
    },
    async endOffsets() {
      return [0, 0];
    },
    async close() {},
  };
}

describe('ingest with several topics', () => {
  // it.fails until ingest is all-or-nothing across topics (reported in notes/helpers/msgs.md).
  it.fails('a batch that fails part-way is in every topic of its source or in none', async () => {
    const log = crashingLog(2);
    const events = [
      { user_id: 'u1', country: 'DE', ts: 1_000 },
      { user_id: 'u2', country: 'US', ts: 2_000 },
    ];
    await expect(ingestEvents(log, tx, [byUser, byUserCountry], events)).rejects.toThrow('process killed');
    const counts = [...log.topics.values()];
    // Every topic holds the same events: all of them or none.
    expect(counts.every((n) => n === counts[0]) && (counts.length === 0 || counts.length === 2)).toBe(true);
  });
});
