/**
 * The file log reads frames into one scratch buffer and decodes ASCII ones as latin1 (`jsonText`): events
 * with any text, in frames of ASCII and non-ASCII text, of growing and shrinking sizes, read whole or
 * stopping mid-frame, and by another reader of the folder, come back exactly as appended.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { rng, tempDir } from './fixtures.ts';

const dirs: { remove(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

/** Strings that differ when decoded wrong: Latin-1 range, accents, CJK, emoji, escapes, controls. */
const TEXTS = [
  'plain ascii',
  'café',
  'naïve Ålborg ÿ',
  '\u0080\u00ff\u0100',
  '東京',
  'emoji 💳🇫🇷',
  '\ud800 lone surrogate',
  'quote " backslash \\ newline \n tab \t nul \u0000 del \u007f',
  '',
];

describe('file log frames', () => {
  it('round-trip events of any text exactly, ASCII frames and others, through the reused scratch buffer', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const log = openFileLog(dir.path);
    const r = rng(3);
    const appended: Record<string, unknown>[] = [];
    // Frames of 1 to 600 events: the scratch grows, then smaller frames reuse it (stale bytes past them).
    for (let f = 0; f < 40; f++) {
      const size = f % 7 === 3 ? 600 : 1 + Math.floor(r() * 40);
      const ascii = f % 2 === 0;
      const batch = Array.from({ length: size }, (_, i) => ({
        name: ascii ? `user ${f}.${i}` : TEXTS[Math.floor(r() * TEXTS.length)] + ` ${f}.${i}`,
        n: i,
        ts: 1_700_000_000_000 + f * 1000 + i,
      }));
      appended.push(...batch);
      await log.append(
        'events',
        batch.map((event) => ({ partitionKey: 'k', event })),
      );
    }
    // One frame bigger than the scratch buffer's 8 MiB cap, then a small one.
    const big = { name: `big ${'é'.repeat(3_000_000)} 💳 ${'x'.repeat(3_000_000)}`, n: -1, ts: 1 };
    const after = { name: 'after ✓', n: -2, ts: 2 };
    for (const event of [big, after]) {
      appended.push(event);
      await log.append('events', [{ partitionKey: 'k', event }]);
    }
    const readAll = async (reader: typeof log, chunk: number) => {
      const out: unknown[] = [];
      for (;;) {
        const records = await reader.read('events', 0, out.length, chunk);
        if (records.length === 0) return out;
        records.forEach((rec, i) => expect(rec.offset).toBe(out.length + i));
        out.push(...records.map((rec) => rec.event));
      }
    };
    expect(await readAll(log, 100_000)).toEqual(appended);
    expect(await readAll(log, 97)).toEqual(appended); // stops mid-frame
    const reader = openFileLog(dir.path);
    expect(await readAll(reader, 1000)).toEqual(appended);
    await reader.close();
    await log.close();
  }, 60_000);

  it('round-trip keyed batches across topics and partitions (each event JSON-encoded once for fingerprint, journal and frames)', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const log = openFileLog(dir.path, { partitions: 2 });
    const r = rng(5);
    const want: Record<string, string[]> = { a: [], b: [] };
    const batch = (f: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        partitionKey: TEXTS[Math.floor(r() * TEXTS.length)] + i,
        event: { name: TEXTS[Math.floor(r() * TEXTS.length)], n: i, ts: 1_700_000_000_000 + f * 1000 + i },
      }));
    let replays = 0;
    for (let f = 0; f < 12; f++) {
      const parts = [
        { topic: 'a', entries: batch(f, 1 + Math.floor(r() * 30)) },
        { topic: 'b', entries: batch(f, 1 + Math.floor(r() * 30)) },
      ];
      const key = f % 3 === 2 ? undefined : `batch-${f}`;
      const results = await log.appendTopics!(parts, key === undefined ? {} : { idempotencyKey: key });
      expect(results.flat().some((x) => x.replayed)).toBe(false);
      for (const part of parts) want[part.topic]!.push(...part.entries.map((e) => JSON.stringify(e.event)));
      if (key !== undefined) {
        // A resend is recognized by its fingerprint (computed from the same cached texts): nothing appended.
        const again = await log.appendTopics!(parts, { idempotencyKey: key });
        expect(again.flat().every((x) => x.replayed)).toBe(true);
        replays++;
      }
    }
    expect(replays).toBe(8);
    const reader = openFileLog(dir.path, { partitions: 2 });
    for (const topic of ['a', 'b']) {
      const got: string[] = [];
      for (const p of [0, 1])
        got.push(...(await reader.read(topic, p, 0, 100_000)).map((x) => JSON.stringify(x.event)));
      expect(got.sort(), topic).toEqual([...want[topic]!].sort());
    }
    await reader.close();
    await log.close();
  }, 60_000);
});
