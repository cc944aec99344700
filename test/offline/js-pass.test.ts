import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, eventSource, groupBy, join, last, sum } from '../../src/index.ts';
import type { Row } from '../../src/define/types.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { readOutput, tempDir, writeCsv } from './support.ts';

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** A CSV source (text times, parsed in the JS pass) with derived columns and a filter. */
async function backfill(derive: (r: Row) => number | null, filter: (r: Row) => boolean = () => true) {
  const dir = tempDir();
  writeCsv(
    joinPath(dir, 'events.csv'),
    ['card', 'note', 'amount', 'ts'],
    [
      { card: 'a', note: 'x', amount: 1.5, ts: iso(T0 + HOUR) },
      { card: 'a', note: 'y', amount: -2, ts: iso(T0 + 2 * HOUR) },
      { card: 'a', note: 'z', amount: 4, ts: iso(T0 + 3 * HOUR) },
    ],
  );
  writeCsv(joinPath(dir, 'left.csv'), ['card', 'ts'], [{ card: 'a', ts: iso(T0 + 10 * HOUR) }]);
  const events = eventSource({
    name: 'payments',
    path: joinPath(dir, 'events.csv'),
    timeColumn: 'ts',
    schema: { card: col.string(), note: col.string(), amount: col.float(), ts: col.timestamp() },
    derive: {
      d: { type: col.float().nullable(), fn: derive },
      // Sees the derived column before it.
      d2: {
        type: col.float().nullable(),
        fn: (r) => ((r as Row).d === null ? null : ((r as Row).d as number) * 10),
      },
    },
    filter,
  });
  const stats = groupBy({
    name: 'card',
    source: events,
    keys: ['card'],
    aggregations: [
      sum('d', { windows: ['1d'] }),
      sum('d2', { windows: ['1d'] }),
      last('ts', { windows: ['1d'] }),
    ],
  });
  const left = eventSource({
    name: 'labels',
    path: joinPath(dir, 'left.csv'),
    timeColumn: 'ts',
    schema: { card: col.string(), ts: col.timestamp() },
  });
  const model = join({ name: 'model', left, parts: [{ groupBy: stats, keys: { card: 'card' } }] });
  const out = joinPath(dir, 'out.parquet');
  await runBackfill({ join: model, left: joinPath(dir, 'left.csv'), out, progress: false });
  return (await readOutput(out))[0];
}

describe('the JS pass of a source (derived columns, filter, text times)', () => {
  it('derived columns see the row (times parsed, earlier derived columns), the filter drops rows', async () => {
    const row = await backfill(
      (r) => (r.ts as number) - T0 + (r.amount as number),
      (r) => (r.amount as number) > 0,
    );
    expect(row.card_d_sum_1d).toBe(HOUR + 1.5 + 3 * HOUR + 4);
    expect(row.card_d2_sum_1d).toBe((HOUR + 1.5 + 3 * HOUR + 4) * 10);
    expect(Number(row.card_ts_last_1d)).toBe(T0 + 3 * HOUR);
  });

  it('a row enumerates every schema column and the derived columns so far', async () => {
    let keys: string[] = [];
    await backfill((r) => {
      keys = Object.keys(r);
      return Object.values({ ...r }).length;
    });
    expect(keys).toEqual(['card', 'note', 'amount', 'ts']);
  });

  it('a definition that assigns to its input row fails, naming the source', async () => {
    const failed = backfill(
      () => 1,
      (r) => {
        (r as Record<string, unknown>).amount = 0;
        return true;
      },
    );
    await expect(failed).rejects.toThrow(/source 'payments'.*assigned 'amount'.*read-only/);
  });
});
