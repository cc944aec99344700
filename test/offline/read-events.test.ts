import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, eventSource } from '../../src/index.ts';
import { readEvents } from '../../src/offline/read-events.ts';
import { tempDir, writeCsv, writeJsonl } from './support.ts';

describe('readEvents', () => {
  it('streams clean events in (ts, seq) order across files, with derived columns, filter, cutoff and skips', async () => {
    const dir = tempDir();
    // File a: rows 0..2; file b: rows 0..2. Ties in ts are ordered by file, then row.
    writeCsv(
      joinPath(dir, 'a.csv'),
      ['card', 'amount', 'ts'],
      [
        { card: 'x', amount: 5, ts: '2024-01-01T00:00:02Z' },
        { card: 'y', amount: -1, ts: '2024-01-01T00:00:01Z' },
        { card: 'z', amount: 7, ts: '2024-01-01T00:00:01' },
      ],
    );
    writeJsonl(joinPath(dir, 'b.jsonl'), [
      { card: 'w', amount: 3, ts: Date.UTC(2024, 0, 1, 0, 0, 1) },
      { card: 'v', amount: 'oops', ts: Date.UTC(2024, 0, 1) },
      { card: 'u', amount: 9, ts: Date.UTC(2024, 0, 1, 0, 0, 9) },
    ]);
    const source = eventSource({
      name: 'pay',
      path: joinPath(dir, '*.{csv,jsonl}'),
      timeColumn: 'ts',
      schema: { card: col.string(), amount: col.float(), ts: col.timestamp() },
      derive: { double: { type: col.float(), fn: (r) => r.amount * 2 } },
      filter: (r) => r.amount > 0,
    });
    let bad = -1;
    const seen: Array<[string, number, number, number]> = [];
    for await (const batch of readEvents(source, {
      until: Date.UTC(2024, 0, 1, 0, 0, 5),
      onBadRow: 'skip',
      onBadRows: (n) => (bad = n),
    })) {
      batch.rows.forEach((row, i) =>
        seen.push([
          row.card as string,
          row.double as number,
          batch.ts[i] - Date.UTC(2024, 0, 1),
          batch.seq[i],
        ]),
      );
    }
    expect(bad).toBe(1);
    expect(seen).toEqual([
      ['z', 14, 1000, 2],
      ['w', 6, 1000, 2 ** 32],
      ['x', 10, 2000, 0],
    ]);
  });
});
