/**
 * Audit finding: with `--partitions N > 1` a POSTed batch goes to several topics (one per key list,
 * topics.ts) and partition files, so a crash part-way used to leave it in some group-bys only (an
 * unacknowledged batch half-applied, and a client retry double-counting it in the first ones). DESIGN §1:
 * state is never left half-written. The file log now journals a multi-file flush (file-log.ts invariant 5);
 * here the crash is simulated by cutting a partition file back to before its frame, as a SIGKILL between
 * the journal's fdatasync and that frame's write would leave it.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy } from '../../src/index.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';

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
const topics = ['tx.user_id', 'tx.user_id+country'];

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-atomic-'));
  dirs.push(d);
  return d;
}

const events = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    user_id: `u${(from + i) % 7}`,
    country: i % 2 ? 'DE' : 'US',
    ts: 1_000 * (from + i),
  }));

/** Events per topic, summed over partitions. */
async function counts(log: EventLog): Promise<number[]> {
  return Promise.all(topics.map(async (t) => (await log.endOffsets(t)).reduce((a, b) => a + b, 0)));
}

/** The one segment file of a (topic, partition), and its size. */
function segment(dir: string, topic: string, p: number): { path: string; size: number } {
  const d = join(dir, topic, `p${p}`);
  const [name] = readdirSync(d);
  return { path: join(d, name), size: statSync(join(d, name)).size };
}

describe('ingest with several topics (file log)', () => {
  it('a batch cut short by a crash is completed on recovery: every topic of its source holds it', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { partitions: 2 });
    await ingestEvents(log, tx, [byUser, byUserCountry], events(0, 20));
    const before = topics.flatMap((t) => [0, 1].map((p) => segment(dir, t, p).size));
    await ingestEvents(log, tx, [byUser, byUserCountry], events(20, 30));
    await log.close();
    // The crash: the second topic's frames of the last batch never reached the disk.
    truncateSync(segment(dir, topics[1], 0).path, before[2]);
    truncateSync(segment(dir, topics[1], 1).path, before[3]);
    const reopened = openFileLog(dir, { partitions: 2 });
    expect(await counts(reopened)).toEqual([50, 20]);
    await reopened.recover!();
    expect(await counts(reopened)).toEqual([50, 50]);
    // The completed partition reads back the same events, at dense offsets, and appends continue after them.
    const read = [
      ...(await reopened.read(topics[1], 0, 0, 100)),
      ...(await reopened.read(topics[1], 1, 0, 100)),
    ];
    expect(read.map((r) => r.event.ts).sort((a, b) => Number(a) - Number(b))).toEqual(
      events(0, 50).map((e) => e.ts),
    );
    await ingestEvents(reopened, tx, [byUser, byUserCountry], events(50, 5));
    expect(await counts(reopened)).toEqual([55, 55]);
    await reopened.close();
  });

  it('the first append after a restart completes the interrupted batch before its own', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { partitions: 2 });
    await ingestEvents(log, tx, [byUser, byUserCountry], events(0, 10));
    const cut = segment(dir, topics[0], 1).size;
    await ingestEvents(log, tx, [byUser, byUserCountry], events(10, 10));
    await log.close();
    truncateSync(segment(dir, topics[0], 1).path, cut);
    const reopened = openFileLog(dir, { partitions: 2 });
    await ingestEvents(reopened, tx, [byUser, byUserCountry], events(20, 10));
    expect(await counts(reopened)).toEqual([30, 30]);
    await reopened.close();
  });

  it('a torn journal record (crash before its fdatasync) is dropped: nothing of that batch appears', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { partitions: 2 });
    await ingestEvents(log, tx, [byUser, byUserCountry], events(0, 10));
    await log.close();
    const journal = join(dir, '.ingest-journal');
    // Half a record: a length that runs past the end of the file.
    const torn = Buffer.alloc(20);
    torn.writeUInt32LE(1_000, 0);
    writeFileSync(journal, torn, { flag: 'a' });
    const reopened = openFileLog(dir, { partitions: 2 });
    await reopened.recover!();
    expect(await counts(reopened)).toEqual([10, 10]);
    expect(statSync(journal).size).toBe(0);
    await reopened.close();
  });
});
