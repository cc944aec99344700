import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventValidationError, ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { readReplayFile } from '../../src/online/replay-file.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { events, groupBys, tempDir } from './fixtures.ts';

const dir = tempDir();
const collect = async <T>(it: AsyncIterable<T>) => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};
afterAll(() => dir.remove());

describe('ingest validation', () => {
  it('rejects a bad batch whole, naming source, origin, row and column', async () => {
    const log = openFileLog(join(dir.path, 'log1'));
    // A .json replay file is an array of events read as a request body (validated by ingest only).
    const path = join(dir.path, 'bad.json');
    writeFileSync(
      path,
      JSON.stringify([
        { user: 'u1', kind: 'a', amount: 1, ts: 1000 },
        { user: 'u1', kind: 'a', amount: 'lots', ts: 'soon' },
        { kind: 'b', amount: 2, ts: '2024-01-01T00:00:00Z' },
      ]),
    );
    const [batch] = await collect(readReplayFile(path, events));
    const err = await ingestEvents(log, events, groupBys, batch!.events, { origin: `file ${path}` }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(EventValidationError);
    expect((err as Error).message).toBe(
      `2 invalid event(s); nothing was appended:
  - source 'events', file ${path}, row 1, column 'amount': expected a number, got "lots" (string). Send a finite JSON number.
  - source 'events', file ${path}, row 1, column 'ts': cannot parse time "soon". Send epoch milliseconds (integer) or ISO-8601 text such as "2024-05-01T12:00:00Z".
  - source 'events', file ${path}, row 2, column 'user': required column is missing or null. Add 'user', or declare it nullable in the source schema.`,
    );
    expect(await log.endOffsets('events')).toEqual([0]);
    await log.close();
  });

  it('with skip, appends the valid events normalized and counts the rest', async () => {
    const log = openFileLog(join(dir.path, 'log2'));
    const res = await ingestEvents(
      log,
      events,
      groupBys,
      [{ user: 'u1', ts: '2024-01-01T00:00:00.5Z', extra: 'dropped' }, { user: 3, ts: 1 }, 'not an object'],
      { onBadRow: 'skip' },
    );
    expect(res.accepted).toBe(1);
    expect(res.skipped).toBe(2);
    expect(res.issues.map((i) => `${i.row}:${i.column}`)).toEqual(['1:user', '2:null']);
    const recs = await log.read('events', 0, 0, 10);
    expect(recs.map((r) => r.event)).toEqual([
      { user: 'u1', kind: null, amount: null, ts: Date.UTC(2024, 0, 1) + 500 },
    ]);
    await log.close();
  });

  it('re-keys events into one topic per key list when partitioned', async () => {
    expect(streamTopics(events, groupBys, 1).map((t) => t.name)).toEqual(['events']);
    const topics = streamTopics(events, groupBys, 4);
    expect(topics.map((t) => [t.name, t.groupBys.map((g) => g.name)])).toEqual([
      ['events.user', ['by_user']],
      ['events.user+kind', ['by_user_kind']],
    ]);
    const log = openFileLog(join(dir.path, 'log3'), { partitions: 4 });
    await ingestEvents(log, events, groupBys, [
      { user: 'u1', kind: 'a', ts: 1 },
      { user: 'u2', kind: 'a', ts: 2 },
    ]);
    for (const t of topics) expect((await log.endOffsets(t.name)).reduce((a, b) => a + b)).toBe(2);
    await log.close();
  });

  it('reports unknown replay formats', async () => {
    await expect(collect(readReplayFile('x.xml', events))).rejects.toThrow(/unknown format; use \.jsonl/);
  });
});

describe('ingest of integer columns', () => {
  it('says an integer beyond ±(2^53 − 1) is out of range, not that it is not whole', async () => {
    const { col, eventSource } = await import('../../src/index.ts');
    const { validateEvent } = await import('../../src/online/validate-event.ts');
    const src = eventSource({
      name: 'big',
      path: 'data/big.jsonl',
      timeColumn: 'ts',
      schema: { n: col.int(), ts: col.timestamp() },
    });
    const tooBig = validateEvent(src, { n: 2 ** 60, ts: 1 }, 0, 'test');
    expect(tooBig.row).toBeUndefined();
    expect(tooBig.issues?.[0]?.message).toContain('beyond ±(2^53 − 1)');
    const fraction = validateEvent(src, { n: 1.5, ts: 1 }, 0, 'test');
    expect(fraction.issues?.[0]?.message).toContain('expected an integer');
    expect(validateEvent(src, { n: 2 ** 53 - 1, ts: 1 }, 0, 'test').row).toEqual({ n: 2 ** 53 - 1, ts: 1 });
  });
});
