/**
 * Picks the left rows of the demo's training set: the charges of the last `days` days of the data.
 *
 * Earlier charges still feed the features (windows look back up to 90 days, lifetime to the start), but
 * as training rows they would see truncated histories, so a real training set starts once features have
 * warmed up. It also keeps `npm start` quick: the backfill computes 73 features per left row.
 */
import { renameSync, rmSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const quote = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Writes the charges with `ts` in the last `days` days before the newest charge to `outPath` (Parquet,
 * written to a temporary file and renamed), keeping file order. Returns the number of rows.
 *
 * @example
 * await writeTrainingRows('data/charges.parquet', 'data/training_rows.parquet', 30); // ≈ the last month
 */
export async function writeTrainingRows(chargesPath: string, outPath: string, days: number): Promise<number> {
  const temp = `${outPath}.tmp`;
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      await connection.run('SET preserve_insertion_order = true');
      const file = `read_parquet(${quote(chargesPath)})`;
      await connection.run(
        `COPY (SELECT * FROM ${file} WHERE ts >= (SELECT max(ts) FROM ${file}) - INTERVAL ${Math.floor(days)} DAY)
         TO ${quote(temp)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      const count = await connection.runAndReadAll(
        `SELECT count(*)::INTEGER FROM read_parquet(${quote(temp)})`,
      );
      renameSync(temp, outPath);
      return Number(count.getRowsJS()[0][0]);
    } finally {
      connection.closeSync();
    }
  } finally {
    rmSync(temp, { force: true });
    instance.closeSync();
  }
}
