import { DuckDBInstance } from '@duckdb/node-api';
import { BENCH_FEATURES, BENCH_WINDOWS } from './definitions.ts';

/**
 * The hand-written DuckDB SQL baseline: the same 20 features with the same sawtooth windows
 * (`floor(t/h)*h - W <= ts < t`), as a range join of left rows with their key's events over the widest
 * window, then FILTERed aggregates per window; left rows keep their order and columns.
 */
export function baselineSql(eventsPath: string, leftPath: string, out: string): string {
  const widest = BENCH_WINDOWS.reduce((a, b) => (b.size > a.size ? b : a));
  const start = (w: { size: number; hop: number }) => `(l.t // ${w.hop}) * ${w.hop} - ${w.size}`;
  const aggregates = BENCH_FEATURES.map(({ name, op, window }) => {
    const expr = op === 'count' ? 'count(e.t)' : `${op}(e.amount)`;
    return `${expr} FILTER (WHERE e.t >= ${start(window)}) AS ${name}`;
  });
  return `
    COPY (
      WITH l AS (SELECT file_row_number AS rid, key, epoch_ms(ts) AS t FROM read_parquet('${leftPath}', file_row_number = true)),
           e AS (SELECT key, epoch_ms(ts) AS t, amount FROM read_parquet('${eventsPath}')),
           f AS (
             SELECT l.rid, ${aggregates.join(',\n                    ')}
             FROM l LEFT JOIN e ON e.key = l.key AND e.t < l.t AND e.t >= ${start(widest)}
             GROUP BY l.rid
           )
      SELECT src.* EXCLUDE (file_row_number), ${BENCH_FEATURES.map((f) => `f.${f.name}`).join(', ')}
      FROM read_parquet('${leftPath}', file_row_number = true) src JOIN f ON f.rid = src.file_row_number
      ORDER BY src.file_row_number
    ) TO '${out}' (FORMAT parquet)`;
}

/** Runs the baseline; returns wall seconds. */
export async function runBaseline(eventsPath: string, leftPath: string, out: string): Promise<number> {
  const started = performance.now();
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    await conn.run(baselineSql(eventsPath, leftPath, out));
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return (performance.now() - started) / 1000;
}
