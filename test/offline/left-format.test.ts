import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy, join } from '../../src/index.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { readOutput, tempDir, writeCsv, writeJsonl } from './support.ts';

/**
 * `--left` files are read by their own extension: the left source's `format` describes its `path` (here
 * Parquet, as the fraud example's charges are), not the CSV or JSONL file a user passes as `--left`.
 */
const T0 = Date.UTC(2024, 0, 1);
const H = 3_600_000;

function model(dir: string) {
  const events = eventSource({
    name: 'payments',
    path: joinPath(dir, 'events.csv'),
    format: 'csv',
    timeColumn: 'ts',
    schema: { card: col.string(), ts: col.timestamp() },
  });
  const stats = groupBy({
    name: 'card',
    source: events,
    keys: ['card'],
    aggregations: [count({ windows: ['1d'] })],
  });
  const left = eventSource({
    name: 'labels',
    path: joinPath(dir, 'labels.parquet'),
    format: 'parquet',
    timeColumn: 'ts',
    schema: { card: col.string(), ts: col.timestamp() },
  });
  return join({ name: 'model', left, parts: [{ groupBy: stats, keys: { card: 'card' } }] });
}

describe('backfill --left', () => {
  it('reads a CSV or JSONL file by its extension when the left source says parquet', async () => {
    const dir = tempDir();
    const iso = (ms: number) => new Date(ms).toISOString();
    writeCsv(
      joinPath(dir, 'events.csv'),
      ['card', 'ts'],
      [
        { card: 'a', ts: iso(T0 + H) },
        { card: 'a', ts: iso(T0 + 2 * H) },
        { card: 'b', ts: iso(T0 + 3 * H) },
      ],
    );
    const rows = [
      { card: 'a', ts: iso(T0 + 10 * H) },
      { card: 'b', ts: iso(T0 + 10 * H) },
      { card: 'c', ts: iso(T0 + 10 * H) },
    ];
    writeCsv(joinPath(dir, 'left.csv'), ['card', 'ts'], rows);
    writeJsonl(joinPath(dir, 'left.jsonl'), rows);
    for (const file of ['left.csv', 'left.jsonl']) {
      const out = joinPath(dir, `${file}.parquet`);
      await runBackfill({ join: model(dir), left: joinPath(dir, file), out, progress: false });
      const got = (await readOutput(out)).map((r) => [r.card, Number(r.card_count_1d)]);
      expect(got, file).toEqual([
        ['a', 2],
        ['b', 1],
        ['c', 0],
      ]);
    }
  });
});
