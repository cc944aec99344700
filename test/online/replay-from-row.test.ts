import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { readReplayFile, replayFile } from '../../src/online/replay-file.ts';
import { events, groupBys, tempDir } from './fixtures.ts';

/**
 * `tessera stream --replay FILE --from-row N` (replay-chunk-keys.ts): an N that does not follow on from
 * the replays of the file in the log is refused before anything is appended, naming the rows it would
 * leave out or append twice and the N to pass; a file that grew is continued idempotently, with or without
 * --from-row; logs written with the keys of older versions are still deduplicated.
 */
const dir = tempDir('tessera-from-row-');
afterAll(() => dir.remove());

/**
 * A CSV of rows 1..n, row i with amount i + `shift` (so the log's amounts name the rows appended), rows
 * `bad` with an amount that is not a number.
 */
const rowsFile = (name: string, n: number, bad: readonly number[] = [], shift = 0) => {
  const path = join(dir.path, name);
  const lines = Array.from(
    { length: n },
    (_, i) =>
      `u${i % 3},a,${bad.includes(i + 1) ? 'abc' : i + 1 + shift},2024-01-01T${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00Z,none`,
  );
  writeFileSync(path, ['user,kind,amount,ts,fraud_pattern', ...lines].join('\n') + '\n');
  return path;
};

/** The amounts of the log's events, in log order: the file rows appended, each as often as appended. */
const rowsInLog = async (log: EventLog) => {
  const [end] = await log.endOffsets('events');
  return (await log.read('events', 0, 0, end! + 1)).map((r) => r.event.amount as number);
};
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const opts = (log: EventLog, file: string, fromRow?: number) => ({
  log,
  source: events,
  groupBys,
  file,
  onBadRow: 'fail' as const,
  dedupe: true,
  checkLmdbKeys: true,
  chunkRows: 4,
  ...(fromRow === undefined ? {} : { fromRow }),
});

describe('replay --from-row', () => {
  it('refuses an N past the rows in the log, naming the rows it would leave out, and appends nothing', async () => {
    const log = openFileLog(join(dir.path, 'log-large'));
    const file = rowsFile('large.csv', 10);
    const never = await replayFile(opts(log, file, 3)).catch((e: Error) => e);
    expect((never as Error).message).toMatch(
      /^--from-row 3 of .*large\.csv: no replay of this file in the log .* appended rows 1-2: none read them, or one skipped them as bad .* nothing was appended\. Replay the file without --from-row/,
    );
    expect(await rowsInLog(log)).toEqual([]);

    rowsFile('large.csv', 6);
    expect(await replayFile(opts(log, file))).toMatchObject({ appended: 6, firstRow: 1, lastRow: 6 });
    rowsFile('large.csv', 10);
    // The earlier replay read rows 1-6: from row 9, rows 7-8 would never be appended.
    const gap = await replayFile(opts(log, file, 9)).catch((e: Error) => e);
    expect((gap as Error).message).toMatch(
      /^--from-row 9 of .*large\.csv: no replay of this file in the log .* appended rows 7-8: .*; nothing was appended\. .*Rows 1-6 are in the log: pass --from-row 7 to append the rest .*--allow-duplicates to replay from row 9 unchecked/,
    );
    // Past the file's end.
    const past = await replayFile(opts(log, file, 13)).catch((e: Error) => e);
    expect((past as Error).message).toMatch(/the file has 10 data row\(s\), so rows 11-12 do not exist/);
    expect(await rowsInLog(log)).toEqual(range(1, 6));
    // Unchecked when asked for: without dedupe N is trusted (as on the Kafka log).
    expect(await replayFile({ ...opts(log, file, 9), dedupe: false })).toMatchObject({ appended: 2 });
    expect(await rowsInLog(log)).toEqual([...range(1, 6), 9, 10]);
    await log.close();
  });

  it('refuses an N inside rows an earlier replay appended, so none is counted twice', async () => {
    const log = openFileLog(join(dir.path, 'log-small'));
    const file = rowsFile('small.csv', 6);
    await replayFile(opts(log, file));
    rowsFile('small.csv', 10);
    for (const n of [6, 2, 3]) {
      const err = await replayFile(opts(log, file, n)).catch((e: Error) => e);
      const [rows, them] =
        n === 6 ? ['row 6 of the file was', 'it'] : [`rows ${n}-6 of the file were`, 'them'];
      expect((err as Error).message).toMatch(
        new RegExp(
          `^--from-row ${n} of .*small\\.csv: ${rows} appended by an earlier replay \\(the log holds rows 1-6 of it\\), so starting at row ${n} would append ${them} again; nothing was appended\\. Pass --from-row 7`,
        ),
      );
    }
    expect(await rowsInLog(log)).toEqual(range(1, 6));
    // An N at a chunk's start inside them: rows 1-4 (sent again) and 5-6 are deduplicated, 7-10 appended once.
    expect(await replayFile(opts(log, file, 5))).toMatchObject({ appended: 4, alreadyInLog: 6 });
    expect(await rowsInLog(log)).toEqual(range(1, 10));
    await log.close();
  });

  it('continues a grown file from where the earlier replay ended, idempotently, with or without --from-row', async () => {
    const log = openFileLog(join(dir.path, 'log-grown'));
    const file = rowsFile('grown.csv', 6);
    expect(await replayFile(opts(log, file))).toMatchObject({ appended: 6 });
    rowsFile('grown.csv', 10);
    // Rows 5-6, the segment ending at row 6, are sent again under their key: already in the log.
    for (let run = 0; run < 2; run++)
      expect(await replayFile(opts(log, file, 7))).toMatchObject({
        appended: run === 0 ? 4 : 0,
        alreadyInLog: run === 0 ? 2 : 6,
        firstRow: 7,
        lastRow: 10,
      });
    expect(await rowsInLog(log)).toEqual(range(1, 10));
    rowsFile('grown.csv', 13);
    for (let run = 0; run < 2; run++)
      expect(await replayFile(opts(log, file, 11))).toMatchObject({
        appended: run === 0 ? 3 : 0,
        alreadyInLog: run === 0 ? 2 : 5,
      });
    // Without --from-row: what is in the log is deduplicated, only the new rows appended.
    rowsFile('grown.csv', 15);
    expect(await replayFile(opts(log, file))).toMatchObject({ appended: 2, alreadyInLog: 13 });
    expect(await replayFile(opts(log, file))).toMatchObject({ appended: 0, alreadyInLog: 15 });
    expect(await rowsInLog(log)).toEqual(range(1, 15));
    // A row the log holds, edited since: its segment is refused, not appended twice.
    writeFileSync(file, readFileSync(file, 'utf8').replace('u1,a,14,', 'u1,a,140,'));
    const err = await replayFile(opts(log, file)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /^rows 14-15 of .* were appended by an earlier replay .* with other events/,
    );
    expect(await rowsInLog(log)).toEqual(range(1, 15));
    await log.close();
  });

  it('finds the segments after a chunk whose every row was skipped, so none is appended twice', async () => {
    const log = openFileLog(join(dir.path, 'log-skipped-chunk'));
    // Rows 5-8 (all of chunk 2) bad: the first replay appends rows 1-4 and 9-10, and no key for chunk 2.
    const bad = [5, 6, 7, 8];
    const file = rowsFile('skipped-chunk.csv', 10, bad);
    const skip = (fromRow?: number) => ({ ...opts(log, file, fromRow), onBadRow: 'skip' as const });
    expect(await replayFile(skip())).toMatchObject({ appended: 6, skipped: 4 });
    // Grown: rows 9-10 are re-sent under their key, not appended again under that of rows 9-11.
    rowsFile('skipped-chunk.csv', 11, bad);
    expect(await replayFile(skip())).toMatchObject({ appended: 1, alreadyInLog: 6, skipped: 4 });
    expect(await rowsInLog(log)).toEqual([...range(1, 4), 9, 10, 11]);
    await log.close();

    // Continued with --from-row, then replayed whole: rows 9-10 and 11 are found after the skipped chunk.
    const log2 = openFileLog(join(dir.path, 'log-skipped-chunk-from'));
    rowsFile('skipped-chunk.csv', 10, bad);
    await replayFile({ ...skip(), log: log2 });
    rowsFile('skipped-chunk.csv', 11, bad);
    expect(await replayFile({ ...skip(11), log: log2 })).toMatchObject({ appended: 1, alreadyInLog: 2 });
    rowsFile('skipped-chunk.csv', 12, bad);
    expect(await replayFile({ ...skip(), log: log2 })).toMatchObject({ appended: 1, alreadyInLog: 7 });
    expect(await rowsInLog(log2)).toEqual([...range(1, 4), 9, 10, 11, 12]);
    await log2.close();
  });

  it('sends the segment ending at row N-1 again: completing it, and refusing a file whose rows changed', async () => {
    // A log that recorded the key of rows 9-10 but stored none of their events (as NATS or a Redis Cluster
    // may, for a replay that crashed after claiming the key).
    const inner = openFileLog(join(dir.path, 'log-claimed'));
    const claimed = new Set<string>();
    const log = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'appendTopics')
          return (parts: never, o?: { idempotencyKey?: string }) => {
            const key = o?.idempotencyKey ?? '';
            if (!key.endsWith(' rows 9 to 10') || claimed.has(key)) return target.appendTopics!(parts, o);
            claimed.add(key);
            return Promise.reject(new Error('crashed after claiming the key'));
          };
        if (prop === 'heldIdempotencyKeys')
          return async (topics: readonly string[], keys: readonly string[]) =>
            (await target.heldIdempotencyKeys!(topics, keys)).map((x, i) => x || claimed.has(keys[i]));
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const file = rowsFile('claimed.csv', 10);
    await expect(replayFile(opts(log, file))).rejects.toThrow(/crashed after claiming/);
    rowsFile('claimed.csv', 12);
    expect(await replayFile(opts(log, file, 11))).toMatchObject({ appended: 4, alreadyInLog: 0 });
    expect(await rowsInLog(log)).toEqual(range(1, 12));
    await inner.close();

    // Replaced by other rows of the same length, then grown: refused at the segment ending at row 10.
    const log2 = openFileLog(join(dir.path, 'log-replaced'));
    const other = rowsFile('replaced.csv', 10);
    await replayFile(opts(log2, other));
    rowsFile('replaced.csv', 12, [], 100);
    const err = await replayFile(opts(log2, other, 11)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /^rows 9-10 of .* were appended by an earlier replay .* with other events/,
    );
    expect(await rowsInLog(log2)).toEqual(range(1, 10));
    await log2.close();
  });

  it('says a file holds fewer rows than the log has of it, for any N', async () => {
    const log = openFileLog(join(dir.path, 'log-shrunk'));
    const file = rowsFile('shrunk.csv', 10);
    await replayFile(opts(log, file));
    rowsFile('shrunk.csv', 7);
    for (const n of [8, 11]) {
      const err = await replayFile(opts(log, file, n)).catch((e: Error) => e);
      expect((err as Error).message).toMatch(
        new RegExp(
          `^--from-row ${n} of .*shrunk\\.csv: the log holds rows 1-10 of this file .*, more than the 7 data row\\(s\\) it has now, so rows were removed from it or it was replaced since; nothing was appended\\. .*as a new file.*--allow-duplicates`,
        ),
      );
    }
    expect(await rowsInLog(log)).toEqual(range(1, 10));
    await log.close();
  });

  it("still deduplicates against the keys of older versions' replays", async () => {
    const file = rowsFile('legacy.csv', 6);
    const fileId = createHash('sha256').update(realpathSync(file)).digest('hex').slice(0, 24);
    /** Appends the file from `fromRow` as an older Tessera did: chunks of 4 rows keyed from `fromRow`. */
    const oldReplay = async (log: EventLog, fromRow: number) => {
      for await (const c of readReplayFile(file, events, { chunkRows: 4, fromRow }))
        await ingestEvents(log, events, groupBys, c.events, {
          idempotencyKey: `tessera-replay ${fileId} rows ${fromRow + c.index * 4}-${fromRow + c.index * 4 + 3}`,
        });
    };
    const inner = openFileLog(join(dir.path, 'log-legacy'));
    let asked = 0;
    const log = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'heldIdempotencyKeys')
          return (topics: readonly string[], keys: readonly string[]) => {
            asked += keys.length;
            return target.heldIdempotencyKeys!(topics, keys);
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    await oldReplay(log, 1);
    expect(await replayFile(opts(log, file))).toMatchObject({ appended: 0, alreadyInLog: 6 });
    // Per chunk its own key and the older one, no lookup of each row as a possible end.
    expect(asked).toBe(4);
    // From a row N: the older keys do not say where that replay ended, so N is refused as unknown.
    const unknown = await replayFile(opts(log, file, 7)).catch((e: Error) => e);
    expect((unknown as Error).message).toMatch(
      /^--from-row 7 of .*: the log holds a replay of it by an older Tessera from row 1 on, whose keys do not say which row it ended at, so whether rows 1-6 are in the log cannot be checked; nothing was appended\. Replay the file without --from-row/,
    );
    // Its last chunk (rows 5-8, nominal) grew: refused as before, since the log cannot tell where it ended.
    rowsFile('legacy.csv', 8);
    const err = await replayFile(opts(log, file)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^rows 5-8 of .* were appended by an earlier replay/);
    expect(await rowsInLog(log)).toEqual(range(1, 6));
    await inner.close();

    // An older replay from row 3 (chunks 3-6, 7-10), run again from row 3.
    rowsFile('legacy.csv', 6);
    const log2 = openFileLog(join(dir.path, 'log-legacy-from'));
    await oldReplay(log2, 3);
    expect(await replayFile(opts(log2, file, 3))).toMatchObject({ appended: 0, alreadyInLog: 4 });
    expect(await rowsInLog(log2)).toEqual(range(3, 6));
    await log2.close();
  });
});
