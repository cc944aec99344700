import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy, join } from '../../src/index.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { duck, tempDir } from './support.ts';

// DuckDB appenders flush every 204,800 rows; a flush on the connection of an open stream used to end the
// stream silently. These sizes push every streamed phase (JS pass, sweep, derivations) past that point.
const EVENTS = 230_000;
const LEFT = 215_000;

describe('backfills larger than one appender flush', () => {
  it('keeps every event and every left row', async () => {
    const dir = tempDir();
    const events = joinPath(dir, 'events.parquet');
    const left = joinPath(dir, 'left.parquet');
    await duck(async (run) => {
      await run(
        `COPY (SELECT 'k' || (i % 1000) AS key, (i % 7)::DOUBLE AS amount, (1704067200000 + i * 1000)::BIGINT AS ts FROM range(${EVENTS}) t(i)) TO '${events}'`,
      );
      await run(
        `COPY (SELECT i AS id, 'k' || ((i * 7) % 1000) AS key, (1704067200000 + i * 1100)::BIGINT AS ts FROM range(${LEFT}) t(i)) TO '${left}'`,
      );
    });
    const source = eventSource({
      name: 'events',
      path: events,
      timeColumn: 'ts',
      schema: { key: col.string(), amount: col.float(), ts: col.timestamp() },
      filter: (r) => r.amount !== 3, // forces the JS pass over every event
    });
    const stats = groupBy({ name: 'g', source, keys: ['key'], aggregations: [count({ windows: ['1h'] })] });
    const labels = eventSource({
      name: 'labels',
      path: left,
      timeColumn: 'ts',
      schema: { id: col.int(), key: col.string(), ts: col.timestamp() },
    });
    const model = join({
      name: 'm',
      left: labels,
      parts: [{ groupBy: stats, keys: { key: 'key' } }],
      derive: { twice: { type: col.int(), fn: (f) => f.g_count_1h * 2 } },
    });
    const out = joinPath(dir, 'out.parquet');
    const result = await runBackfill({ join: model, left, out, progress: false });
    expect(result.rows).toBe(LEFT);
    const check = await duck((run) =>
      run(`
        WITH o AS (SELECT *, row_number() OVER () - 1 AS pos FROM read_parquet('${out}')),
             e AS (SELECT key, ts FROM read_parquet('${events}') WHERE (ts // 1000 - 1704067200) % 7 <> 3),
             x AS (SELECT o.id, count(e.ts) AS expected FROM o LEFT JOIN e ON e.key = o.key
                     AND e.ts < o.ts AND e.ts >= (o.ts // 300000) * 300000 - 3600000 GROUP BY o.id)
        SELECT count(*) AS rows,
               count(*) FILTER (WHERE o.g_count_1h <> x.expected OR o.twice <> 2 * x.expected) AS wrong
        FROM o JOIN x USING (id)`),
    );
    expect(check).toEqual([{ rows: LEFT, wrong: 0 }]);
  });
});
