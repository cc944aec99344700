import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy, join, sum } from '../../src/index.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { readOutput, tempDir, writeCsv } from './support.ts';

const T0 = Date.UTC(2024, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

function model(dir: string, eventsPath: string, format: 'csv' | 'parquet' | 'jsonl' = 'csv') {
  const events = eventSource({
    name: 'payments',
    path: eventsPath,
    format,
    timeColumn: 'ts',
    schema: { card: col.string(), amount: col.float(), ts: col.timestamp() },
  });
  const stats = groupBy({
    name: 'card',
    source: events,
    keys: ['card'],
    aggregations: [count({ windows: ['1d'] }), sum('amount', { windows: ['1d'] })],
  });
  const left = eventSource({
    name: 'labels',
    path: joinPath(dir, 'left.csv'),
    timeColumn: 'ts',
    schema: { card: col.string(), ts: col.timestamp() },
  });
  return join({ name: 'model', left, parts: [{ groupBy: stats, keys: { card: 'card' } }] });
}

function setup(rows: Array<Record<string, unknown>>, columns = ['card', 'amount', 'ts']) {
  const dir = tempDir();
  writeCsv(joinPath(dir, 'events.csv'), columns, rows);
  writeCsv(
    joinPath(dir, 'left.csv'),
    ['card', 'ts'],
    [
      { card: 'a', ts: iso(T0 + 10 * 3_600_000) },
      { card: 'b', ts: iso(T0 + 11 * 3_600_000) },
    ],
  );
  return dir;
}

const good = [
  { card: 'a', amount: 1.5, ts: iso(T0 + 3_600_000) },
  { card: 'a', amount: 2, ts: iso(T0 + 2 * 3_600_000) },
  { card: 'b', amount: 4, ts: iso(T0 + 3 * 3_600_000) },
];

async function backfill(
  dir: string,
  extra: { onBadRow?: 'fail' | 'skip'; events?: string; format?: 'csv' | 'parquet' | 'jsonl' } = {},
) {
  return runBackfill({
    join: model(dir, extra.events ?? joinPath(dir, 'events.csv'), extra.format),
    left: joinPath(dir, 'left.csv'),
    out: joinPath(dir, 'out.parquet'),
    onBadRow: extra.onBadRow,
    progress: false,
  });
}

async function failure(dir: string, extra?: Parameters<typeof backfill>[1]): Promise<string> {
  const error = await backfill(dir, extra).then(
    () => new Error('expected the backfill to fail'),
    (e: unknown) => e as Error,
  );
  expect(existsSync(joinPath(dir, 'out.parquet'))).toBe(false);
  expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  return error.message.replaceAll(dir, '<dir>');
}

describe('bad input (DESIGN §1): errors name source, file, row and column; no partial output', () => {
  it('a wrong type', async () => {
    const dir = setup([...good, { card: 'b', amount: 'abc', ts: iso(T0) }]);
    expect(await failure(dir)).toMatchInlineSnapshot(
      `"Bad input in source 'payments', file <dir>/events.csv, row 4, column 'amount': value "abc" is not a number. Fix: correct the value, or rerun with --on-bad-row skip to skip and count such rows."`,
    );
  });

  it('an unparseable timestamp', async () => {
    const dir = setup([good[0], { card: 'b', amount: 3, ts: '2024-13-45T00:00:00Z' }, ...good.slice(1)]);
    expect(await failure(dir)).toMatchInlineSnapshot(
      `"Bad input in source 'payments', file <dir>/events.csv, row 2, column 'ts': value "2024-13-45T00:00:00Z" is not a time (timestamp, integer epoch ms, or ISO-8601 text). Fix: correct the value, or rerun with --on-bad-row skip to skip and count such rows."`,
    );
  });

  it('a null timestamp', async () => {
    const dir = setup([...good, { card: 'b', amount: 3, ts: null }]);
    expect(await failure(dir)).toContain("row 4, column 'ts': the event time is null");
  });

  it('a missing column', async () => {
    const dir = setup(
      good.map(({ card, ts }) => ({ card, ts })),
      ['card', 'ts'],
    );
    expect(await failure(dir)).toMatchInlineSnapshot(
      `"Bad input in source 'payments', file <dir>/events.csv, column 'amount': the file has no column 'amount' (it has: card, ts). Fix: add the column to the file, or fix the schema of source 'payments'."`,
    );
  });

  it('a missing file', async () => {
    const dir = setup(good);
    expect(await failure(dir, { events: joinPath(dir, 'nope-*.csv') })).toMatchInlineSnapshot(
      `"Source 'payments': path '<dir>/nope-*.csv' matches no file (looked for <dir>/nope-*.csv). Fix: check the path, or generate the data first."`,
    );
  });

  it('an empty file (header only, or zero bytes)', async () => {
    const dir = setup(good);
    writeFileSync(joinPath(dir, 'header-only.csv'), 'card,amount,ts\n');
    expect(await failure(dir, { events: joinPath(dir, 'header-only.csv') })).toContain(
      'file <dir>/header-only.csv: the file has no rows',
    );
    writeFileSync(joinPath(dir, 'zero.csv'), '');
    expect(await failure(dir, { events: joinPath(dir, 'zero.csv') })).toContain(
      "source 'payments', file <dir>/zero.csv: the file is empty (0 bytes)",
    );
  });

  it('a bad left row time', async () => {
    const dir = setup(good);
    writeCsv(
      joinPath(dir, 'left.csv'),
      ['card', 'ts'],
      [
        { card: 'a', ts: iso(T0) },
        { card: 'a', ts: 'soon' },
      ],
    );
    expect(await failure(dir)).toContain(
      "source 'model (left)', file <dir>/left.csv, row 2, column 'ts': value \"soon\"",
    );
  });

  it('a failed run leaves an existing output untouched', async () => {
    const dir = setup([...good, { card: 'b', amount: 'abc', ts: iso(T0) }]);
    writeFileSync(joinPath(dir, 'out.parquet'), 'previous');
    await expect(backfill(dir)).rejects.toThrow(/column 'amount'/);
    expect(readdirSync(dir).sort()).toEqual(['events.csv', 'left.csv', 'out.parquet']);
  });

  it('--on-bad-row skip skips, counts and reports bad rows, and computes the rest', async () => {
    const dir = setup([
      good[0],
      { card: 'a', amount: 'abc', ts: iso(T0) },
      good[1],
      { card: 'a', amount: 5, ts: 'never' },
      { card: 'a', amount: 5, ts: null },
      good[2],
    ]);
    writeCsv(
      joinPath(dir, 'left.csv'),
      ['card', 'ts'],
      [
        { card: 'a', ts: iso(T0 + 10 * 3_600_000) },
        { card: 'a', ts: 'soon' },
        { card: 'b', ts: iso(T0 + 11 * 3_600_000) },
      ],
    );
    const result = await backfill(dir, { onBadRow: 'skip' });
    expect(result.badRows).toBe(4);
    expect(result.rows).toBe(2);
    const rows = await readOutput(joinPath(dir, 'out.parquet'));
    expect(rows.map((r) => [r.card, r.card_count_1d, r.card_amount_sum_1d])).toEqual([
      ['a', 2, 3.5],
      ['b', 1, 4],
    ]);
  });
});
