import { copyFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SourceDef } from '../../src/define/types.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { readEvents } from '../../src/offline/read-events.ts';
import { openScratchDb } from '../../src/offline/duck.ts';
import { readReplayFile, replayFile } from '../../src/online/replay-file.ts';
import { events, groupBys, tempDir } from './fixtures.ts';

/**
 * `tessera stream --replay FILE` reads files as the backfill does (types from the source schema, not
 * inferred; bad rows located by 1-based file row) and appends each chunk under an idempotency key, so a
 * replay run twice appends its events once.
 */
const dir = tempDir('tessera-replay-');
afterAll(() => dir.remove());

const logEvents = async (log: EventLog) => {
  const [end] = await log.endOffsets('events');
  return (await log.read('events', 0, 0, end! + 1)).map((r) => r.event);
};

// Numeric-looking strings (DuckDB would infer BIGINT), a column outside the schema, a bad amount on file row 4.
const header = 'user,kind,amount,ts,fraud_pattern';
const good = [
  '511624,a,12.5,2024-01-01T00:00:00Z,none',
  '511624,2,3,2024-01-01T00:01:00Z,none',
  '000042,b,,2024-01-01T00:02:00Z,burst',
  '511625,c,7,2024-01-01T00:04:00Z,none',
  '511624,a,1e3,2024-01-01T00:05:00.250Z,none',
];
const badLine = '000042,a,abc,2024-01-01T00:03:00Z,none';
const csv = (lines: string[]) => [header, ...lines].join('\n') + '\n';
const expected = [
  { user: '511624', kind: 'a', amount: 12.5, ts: Date.parse('2024-01-01T00:00:00Z') },
  { user: '511624', kind: '2', amount: 3, ts: Date.parse('2024-01-01T00:01:00Z') },
  { user: '000042', kind: 'b', amount: null, ts: Date.parse('2024-01-01T00:02:00Z') },
  { user: '511625', kind: 'c', amount: 7, ts: Date.parse('2024-01-01T00:04:00Z') },
  { user: '511624', kind: 'a', amount: 1000, ts: Date.parse('2024-01-01T00:05:00.250Z') },
];

describe('replay files read as the backfill reads them', () => {
  const file = join(dir.path, 'charges.csv');
  writeFileSync(file, csv([...good.slice(0, 3), badLine, ...good.slice(3)]));

  it('fails on a bad value naming the file and its 1-based row, appending nothing', async () => {
    const log = openFileLog(join(dir.path, 'log-fail'));
    const err = await replayFile({ ...base(log, file), onBadRow: 'fail' }).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `Bad input in source 'events', file ${file}, row 4, column 'amount': value "abc" is not a number. ` +
        'Fix: correct the value, or rerun with --on-bad-row skip to skip and count such rows.',
    );
    expect(await log.endOffsets('events')).toEqual([0]);

    // An event ingest refuses (no user) in a later chunk: checked before the first chunk is appended.
    const noUser = join(dir.path, 'no-user.csv');
    writeFileSync(noUser, csv([...good.slice(0, 4), ',a,1,2024-01-01T00:06:00Z,none', good[4]!]));
    const err2 = await replayFile({ ...base(log, noUser), onBadRow: 'fail', chunkRows: 2 }).catch(
      (e: Error) => e,
    );
    expect((err2 as Error).message).toMatch(
      new RegExp(
        `^1 invalid event\\(s\\); nothing was appended.*\n  - source 'events', file ${noUser}, row 5, column 'user': required column is missing or null`,
      ),
    );
    expect(await log.endOffsets('events')).toEqual([0]);
    await log.close();
  });

  it('with skip, skips only the bad row, types columns by the schema, and matches the backfill', async () => {
    const log = openFileLog(join(dir.path, 'log-skip'));
    const r = await replayFile(base(log, file));
    expect(r).toMatchObject({ appended: 5, alreadyInLog: 0, skipped: 1 });
    expect(await logEvents(log)).toEqual(expected);
    // The backfill's reading of the same file: the same events (its filter and derived columns aside).
    const backfill: unknown[] = [];
    let bad = 0;
    const src: SourceDef = { ...events, path: file, derived: {}, filter: undefined };
    for await (const b of readEvents(src, { onBadRow: 'skip', onBadRows: (n) => (bad = n) }))
      backfill.push(...b.rows);
    expect(bad).toBe(1);
    expect(await logEvents(log)).toEqual(backfill);
    await log.close();
  });

  it('reads Parquet and JSONL of the same rows to the same events', async () => {
    const db = await openScratchDb();
    const paths = ['same.parquet', 'same.jsonl'].map((f) => join(dir.path, f));
    const clean = join(dir.path, 'clean.csv');
    writeFileSync(clean, csv(good));
    // `user` as numbers (Parquet BIGINT, JSON numbers), `ts` a Parquet TIMESTAMP and JSON text.
    const typed =
      `SELECT CAST("user" AS BIGINT) AS "user", kind, CAST(amount AS DOUBLE) AS amount, CAST(ts AS TIMESTAMP) AS ts, ` +
      `fraud_pattern FROM read_csv('${clean}', all_varchar = true)`;
    await db.conn.run(`COPY (${typed}) TO '${paths[0]}' (FORMAT parquet)`);
    await db.conn.run(`COPY (${typed}) TO '${paths[1]}' (FORMAT json)`);
    db.close();
    for (const path of paths) {
      const log = openFileLog(join(dir.path, `log-${path.split('.').pop()}`));
      expect(await replayFile({ ...base(log, path), onBadRow: 'fail' })).toMatchObject({
        appended: 5,
        alreadyInLog: 0,
        skipped: 0,
      });
      const got = await logEvents(log);
      // '000042' was the number 42 in these files.
      expect(got).toEqual(expected.map((e) => (e.user === '000042' ? { ...e, user: '42' } : e)));
      await log.close();
    }
  });
});

describe('replay file values', () => {
  it('reads float epoch-ms times whose value is whole (pandas exports, JSON encoders) and refuses fractional ones', async () => {
    const t = Date.parse('2024-01-01T00:00:00Z'); // 1704067200000
    const jsonl = join(dir.path, 'float-ts.jsonl');
    writeFileSync(
      jsonl,
      '{"user":"u1","kind":"a","amount":1,"ts":1704067200000.0}\n{"user":"u2","kind":"a","amount":2,"ts":1.7040672e12}\n',
    );
    const csvFile = join(dir.path, 'float-ts.csv');
    writeFileSync(csvFile, 'user,kind,amount,ts\nu1,a,1,1704067200000.0\nu2,a,2,1.7040672e12\n');
    for (const path of [jsonl, csvFile]) {
      const log = openFileLog(join(dir.path, `log-float-ts-${path.split('.').pop()}`));
      expect(await replayFile({ ...base(log, path), onBadRow: 'fail' })).toMatchObject({ appended: 2 });
      expect((await logEvents(log)).map((e) => e.ts)).toEqual([t, t]);
      await log.close();
    }
    writeFileSync(csvFile, 'user,kind,amount,ts\nu1,a,1,1704067200000.5\n');
    const log = openFileLog(join(dir.path, 'log-float-ts-frac'));
    await expect(replayFile({ ...base(log, csvFile), onBadRow: 'fail' })).rejects.toThrow(
      /row 1, column 'ts': value "1704067200000.5" is not/,
    );
    await log.close();
  });
});

describe('replay files without a nullable column', () => {
  it('reads a nullable schema column the file lacks as null, and still needs the time and non-nullable columns', async () => {
    const t = Date.parse('2024-01-01T00:00:00Z');
    const files = {
      csv: 'user,ts,fraud_pattern\nu1,2024-01-01T00:00:00Z,none\nu2,2024-01-01T00:00:00Z,none\n',
      jsonl: '{"user":"u1","ts":"2024-01-01T00:00:00Z"}\n{"user":"u2","ts":1704067200000}\n',
    };
    for (const [ext, text] of Object.entries(files)) {
      const path = join(dir.path, `no-kind.${ext}`);
      writeFileSync(path, text);
      const log = openFileLog(join(dir.path, `log-no-kind-${ext}`));
      expect(await replayFile({ ...base(log, path), onBadRow: 'fail' })).toMatchObject({ appended: 2 });
      expect(await logEvents(log)).toEqual([
        { user: 'u1', kind: null, amount: null, ts: t },
        { user: 'u2', kind: null, amount: null, ts: t },
      ]);
      await log.close();
    }
    const parquet = join(dir.path, 'no-kind.parquet');
    const db = await openScratchDb();
    await db.conn.run(
      `COPY (SELECT 'u1' AS "user", TIMESTAMP '2024-01-01 00:00:00' AS ts) TO '${parquet}' (FORMAT parquet)`,
    );
    db.close();
    const log = openFileLog(join(dir.path, 'log-no-kind-parquet'));
    expect(await replayFile({ ...base(log, parquet), onBadRow: 'fail' })).toMatchObject({ appended: 1 });
    expect(await logEvents(log)).toEqual([{ user: 'u1', kind: null, amount: null, ts: t }]);

    const noUser = join(dir.path, 'no-user-column.csv');
    writeFileSync(noUser, 'kind,ts\na,2024-01-01T00:00:00Z\n');
    await expect(replayFile({ ...base(log, noUser), onBadRow: 'fail' })).rejects.toThrow(
      /file .*no-user-column\.csv, column 'user': the file has no column 'user'/,
    );
    await log.close();
  });
});

describe('replay notes', () => {
  it('reports derived columns the file has as ignored, and words issues for a file', async () => {
    const path = join(dir.path, 'with-cents.csv');
    writeFileSync(path, 'user,kind,amount,ts,cents\nu1,a,1.5,2024-01-01T00:00:00Z,999\n');
    const log = openFileLog(join(dir.path, 'log-cents'));
    const r = await replayFile({ ...base(log, path), onBadRow: 'fail' });
    expect(r).toMatchObject({ appended: 1, ignoredDerived: ['cents'] });
    expect(await logEvents(log)).toEqual([
      { user: 'u1', kind: 'a', amount: 1.5, ts: Date.parse('2024-01-01T00:00:00Z') },
    ]);

    const noUsers = join(dir.path, 'no-users.csv');
    writeFileSync(noUsers, csv(Array.from({ length: 22 }, () => ',a,1,2024-01-01T00:06:00Z,none')));
    const err = await replayFile({ ...base(log, noUsers), onBadRow: 'fail' }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^22 invalid event\(s\); nothing was appended/);
    expect((err as Error).message).toMatch(
      /… and 2 more issue\(s\): fix these in the file and replay it again to see them, or replay with --on-bad-row skip to skip and count such rows$/,
    );
    await log.close();
  });
});

describe('replaying a file again', () => {
  const file = join(dir.path, 'twice.csv');

  it('appends nothing the second time and says the events were already in the log', async () => {
    writeFileSync(file, csv([...good.slice(0, 3), badLine, ...good.slice(3)]));
    const log = openFileLog(join(dir.path, 'log-twice'));
    const opts = { ...base(log, file), chunkRows: 2 }; // 3 chunks of file rows: 1-2, 3-4, 5-6
    expect(await replayFile(opts)).toMatchObject({ appended: 5, alreadyInLog: 0, skipped: 1 });
    expect(await replayFile(opts)).toMatchObject({ appended: 0, alreadyInLog: 5, skipped: 1 });
    expect(await logEvents(log)).toEqual(expected);

    // A row changed since: the chunks before it are skipped, its chunk is refused, not appended twice.
    writeFileSync(file, csv([...good.slice(0, 3), badLine.replace('abc', '4'), ...good.slice(3)]));
    const err = await replayFile(opts).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^rows 3-4 of ${file} were appended by an earlier replay of this file .* with other events, so the file has changed since.*--allow-duplicates`,
      ),
    );
    expect((err as Error).message).toContain(
      'so the file has changed since: rows in them edited or removed (or rows added to a chunk a Tessera older than ' +
        'the --from-row checks appended). Row 3 and the rows after it were not appended now. The log keeps the events ' +
        `appended before (it is append-only): replay the changed or added rows as a new file (for CSV the header line and \`tail -n +$((R+2)) ${file}\`, for JSONL`,
    );
    expect((err as Error).message).toMatch(
      /\nThe rows before \(1-2\) were replayed: 0 event\(s\) appended, 2 already in the log\.$/,
    );
    expect(await logEvents(log)).toEqual(expected);

    // Without dedupe, as before: appended again.
    expect(await replayFile({ ...opts, dedupe: false })).toMatchObject({ appended: 6, alreadyInLog: 0 });
    expect((await logEvents(log)).length).toBe(11);
    await log.close();
  });

  it('keys a chunk by its range of file rows: a skipped first row, fixed, conflicts instead of appending twice', async () => {
    // 6 rows in chunks of 3; row 1 bad in run 1 (the chunk's first row), fixed before run 2.
    const rows6 = [good[0]!, good[1]!, good[2]!, good[3]!, good[4]!, '511626,d,9,2024-01-01T00:07:00Z,none'];
    writeFileSync(file, csv([rows6[0]!.replace('12.5', 'x'), ...rows6.slice(1)]));
    const log = openFileLog(join(dir.path, 'log-first-skipped'));
    const opts = { ...base(log, file), chunkRows: 3 };
    expect(await replayFile(opts)).toMatchObject({ appended: 5, alreadyInLog: 0, skipped: 1 });
    writeFileSync(file, csv(rows6));
    const err = await replayFile(opts).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      new RegExp(`^rows 1-3 of ${file} were appended by an earlier replay`),
    );
    expect((await logEvents(log)).length).toBe(5);

    // A key too long for LMDB in the middle of a chunk (skip): left out of the chunk's one append, so a rerun
    // appends nothing, and a fixed key conflicts too.
    const long = `${'u'.repeat(3000)},a,1,2024-01-01T00:06:00Z,none`;
    const longFile = join(dir.path, 'long-key.csv');
    writeFileSync(longFile, csv([rows6[0]!, long, ...rows6.slice(1)]));
    const log2 = openFileLog(join(dir.path, 'log-long-key'));
    const opts2 = { ...base(log2, longFile), chunkRows: 3 };
    expect(await replayFile(opts2)).toMatchObject({ appended: 6, alreadyInLog: 0, skipped: 1 });
    expect(await replayFile(opts2)).toMatchObject({ appended: 0, alreadyInLog: 6, skipped: 1 });
    writeFileSync(longFile, csv([rows6[0]!, long.replace(/^u+/, 'u1'), ...rows6.slice(1)]));
    const err2 = await replayFile(opts2).catch((e: Error) => e);
    expect((err2 as Error).message).toMatch(
      new RegExp(`^rows 1-3 of ${longFile} were appended by an earlier replay`),
    );
    expect((await logEvents(log2)).length).toBe(6);
    await log.close();
    await log2.close();
  });

  it('goes on with fromRow after rows were added to a file whose last chunk was partial', async () => {
    // Rows 1-6 (row 4 bad, skipped) in chunks of 4: rows 1-4 and a partial 5-8.
    writeFileSync(file, csv([...good.slice(0, 3), badLine, ...good.slice(3)]));
    const log = openFileLog(join(dir.path, 'log-grown'));
    const opts = { ...base(log, file), chunkRows: 4 };
    expect(await replayFile(opts)).toMatchObject({
      appended: 5,
      alreadyInLog: 0,
      skipped: 1,
      firstRow: 1,
      lastRow: 6,
    });
    const added = ['511627,e,1,2024-01-01T00:08:00Z,none', '511627,e,2,2024-01-01T00:09:00Z,none'];
    writeFileSync(file, csv([...good.slice(0, 3), badLine, ...good.slice(3), ...added]));
    // The earlier replay read rows 1-6, so on from row 7: rows 7-8 appended once, the bad row 4 not counted;
    // the segment ending at row 6 (rows 5-6) is sent again under its key, already in the log.
    const from7 = { ...opts, fromRow: 7 };
    expect(await replayFile(from7)).toMatchObject({
      appended: 2,
      alreadyInLog: 2,
      skipped: 0,
      firstRow: 7,
      lastRow: 8,
    });
    expect(await replayFile(from7)).toMatchObject({
      appended: 0,
      alreadyInLog: 4,
      skipped: 0,
      firstRow: 7,
      lastRow: 8,
    });
    // The whole file again: rows 5-6 and 7-8 of the grown chunk 5-8 are in the log under their own keys.
    expect(await replayFile(opts)).toMatchObject({ appended: 0, alreadyInLog: 7, skipped: 1 });
    expect(await replayFile({ ...opts, fromRow: 9 })).toMatchObject({ appended: 0, firstRow: 9, lastRow: 8 });
    const got = await logEvents(log);
    expect(got.length).toBe(7);
    expect(got.slice(5).map((e) => e.amount)).toEqual([1, 2]);
    await log.close();
  });

  it('knows a file by its real path: a relative path or a symlink is the same file, a copy a new one', async () => {
    writeFileSync(file, csv(good));
    const log = openFileLog(join(dir.path, 'log-identity'));
    expect(await replayFile(base(log, file))).toMatchObject({ appended: 5, alreadyInLog: 0 });
    expect(await replayFile(base(log, relative(process.cwd(), file)))).toMatchObject({
      appended: 0,
      alreadyInLog: 5,
    });
    const link = join(dir.path, 'twice-link.csv');
    symlinkSync(file, link);
    expect(await replayFile(base(log, link))).toMatchObject({ appended: 0, alreadyInLog: 5 });
    const copy = join(dir.path, 'twice-copy.csv');
    copyFileSync(file, copy);
    expect(await replayFile(base(log, copy))).toMatchObject({ appended: 5, alreadyInLog: 0 });
    await log.close();
  });

  it("stops at the embedded log's key cap, naming it and --allow-duplicates", async () => {
    writeFileSync(file, csv(good));
    const log = openFileLog(join(dir.path, 'log-cap'), { idempotencyMaxKeys: 2 });
    const opts = { ...base(log, file), chunkRows: 2 }; // 3 chunks, so 3 keys
    const err = await replayFile(opts).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /remembers at most 2 idempotency keys .* Or pass --allow-duplicates to replay without dedupe\.\nThe rows before \(1-\d\) were replayed: \d event\(s\) appended, 0 already in the log\. Running the same replay again skips them/,
    );
    const before = (await logEvents(log)).length;
    expect(before).toBeGreaterThan(0);
    expect(await replayFile({ ...opts, dedupe: false })).toMatchObject({ appended: 5 });
    await log.close();
  });

  it('refuses a log that cannot dedupe unless dedupe is off, appending nothing', async () => {
    writeFileSync(file, csv(good));
    const fileLog = openFileLog(join(dir.path, 'log-nodedupe'));
    // A log without idempotent appends, as the Kafka log.
    const log = new Proxy(fileLog, {
      get: (t, p) => (p === 'idempotentAppends' ? false : p === 'kind' ? 'kafka' : Reflect.get(t, p, t)),
    });
    await expect(replayFile(base(log, file))).rejects.toThrow(
      /the kafka event log cannot deduplicate appends, so replaying .* nothing was appended\. .*--allow-duplicates/,
    );
    expect(await fileLog.endOffsets('events')).toEqual([0]);
    expect(await replayFile({ ...base(log, file), dedupe: false })).toMatchObject({ appended: 5 });
    await fileLog.close();
  });
});

describe('rows ingest refuses, and values as written', () => {
  // Staged fine (typed by the schema), but ingest refuses: no user (row 2), an infinite amount (row 4).
  const file = join(dir.path, 'refused.csv');
  writeFileSync(
    file,
    csv([
      good[0]!,
      ',a,1,2024-01-01T00:06:00Z,none',
      good[1]!,
      '511624,a,inf,2024-01-01T00:07:00Z,none',
      good[2]!,
    ]),
  );
  const read = async (onBadRow: 'fail' | 'skip') => {
    let bad = -1;
    const out: unknown[] = [];
    for await (const c of readReplayFile(file, events, {
      onBadRow,
      chunkRows: 2,
      onBadRows: (n) => (bad = n),
    }))
      out.push([c.index, c.rows, c.events.length]);
    return { out, bad };
  };

  it('reads no such row: skip leaves them out and counts them, fail refuses the file before any event', async () => {
    expect(await read('skip')).toEqual({
      out: [
        [0, [1], 1],
        [1, [3], 1],
        [2, [5], 1],
      ],
      bad: 2,
    });
    await expect(read('fail')).rejects.toThrow(
      /^2 invalid event\(s\); nothing was appended.*\n.*row 2, column 'user': required column is missing or null.*\n.*row 4, column 'amount': expected a number, got Infinity/,
    );
  });

  it('replays them as ingest would: skipped and counted, or refused with its messages', async () => {
    const log = openFileLog(join(dir.path, 'log-refused'));
    const err = await replayFile({ ...base(log, file), onBadRow: 'fail' }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^2 invalid event\(s\); nothing was appended/);
    expect(await log.endOffsets('events')).toEqual([0]);
    const opts = { ...base(log, file), chunkRows: 2 };
    expect(await replayFile(opts)).toMatchObject({ appended: 3, alreadyInLog: 0, skipped: 2 });
    expect(await replayFile(opts)).toMatchObject({ appended: 0, alreadyInLog: 3, skipped: 2 });
    expect(await logEvents(log)).toEqual([expected[0], expected[1], expected[2]]);
    await log.close();
  });

  it('keeps strings and numbers exactly: quotes, newlines, non-ASCII, extreme and fractional doubles', async () => {
    const odd = join(dir.path, 'odd.csv');
    const kinds = ['say "hi"', 'two\nlines', 'caf\u00e9 \u{1f600}', '\u0001', ''];
    const amounts = [0.1 + 0.2, 1e-300, -123456789.12345679, 5e-324, 1.7976931348623157e308];
    const quote = (v: string) => `"${v.replaceAll('"', '""')}"`;
    writeFileSync(odd, csv(kinds.map((k, i) => `u${i},${quote(k)},${amounts[i]},${1704067200000 + i},none`)));
    const log = openFileLog(join(dir.path, 'log-odd'));
    expect(await replayFile({ ...base(log, odd), onBadRow: 'fail' })).toMatchObject({ appended: 5 });
    expect(await logEvents(log)).toEqual(
      kinds.map((k, i) => ({
        user: `u${i}`,
        kind: k === '' ? null : k,
        amount: amounts[i],
        ts: 1704067200000 + i,
      })),
    );
    await log.close();
  });
});

function base(log: EventLog, file: string) {
  return {
    log,
    source: events,
    groupBys,
    file,
    onBadRow: 'skip' as const,
    dedupe: true,
    checkLmdbKeys: true,
  };
}
