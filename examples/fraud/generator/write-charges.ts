/**
 * Writes generated charges to Parquet through DuckDB.
 *
 * Rows are generated in JS and streamed to a temporary CSV (cheap, one sequential write), then DuckDB
 * converts it to typed Parquet in one COPY; that is much faster than appending millions of values one
 * N-API call at a time. Both the CSV and the Parquet are written under temporary names and the Parquet is
 * renamed into place last, so an interrupted run never leaves a half-written dataset behind.
 */
import { closeSync, existsSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { CHARGE_COLUMNS, type Charge } from './charge.ts';

/** DuckDB types of the written columns (`ts` is converted from epoch ms to TIMESTAMP on the way). */
const CSV_TYPES: Record<(typeof CHARGE_COLUMNS)[number], string> = {
  charge_id: 'VARCHAR',
  ts: 'BIGINT',
  card_id: 'VARCHAR',
  merchant_id: 'VARCHAR',
  merchant_category: 'VARCHAR',
  amount: 'DOUBLE',
  email_domain: 'VARCHAR',
  ip: 'VARCHAR',
  device_id: 'VARCHAR',
  country: 'VARCHAR',
  card_bin: 'VARCHAR',
  channel: 'VARCHAR',
  is_fraud: 'BOOLEAN',
  fraud_pattern: 'VARCHAR',
};

function csvLine(c: Charge): string {
  // No generated string contains a comma, quote or newline, so fields need no quoting; '' means null.
  return `${c.charge_id},${c.ts},${c.card_id},${c.merchant_id},${c.merchant_category},${c.amount},${c.email_domain},${
    c.ip ?? ''
  },${c.device_id ?? ''},${c.country},${c.card_bin},${c.channel},${c.is_fraud},${c.fraud_pattern ?? ''}\n`;
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Writes batches of charges to `path` as Parquet (atomically) and returns the number of rows and of
 * fraud-labeled rows.
 *
 * @example
 * await writeChargesParquet(plan.days(), 'examples/fraud/data/charges.parquet');
 */
export async function writeChargesParquet(
  batches: Iterable<Charge[]>,
  path: string,
): Promise<{ rows: number; fraudRows: number }> {
  const csvPath = `${path}.csv.tmp`;
  const parquetTmp = `${path}.tmp`;
  let rows = 0;
  let fraudRows = 0;
  try {
    const fd = openSync(csvPath, 'w');
    try {
      writeSync(fd, CHARGE_COLUMNS.join(',') + '\n');
      for (const batch of batches) {
        let text = '';
        for (const c of batch) {
          text += csvLine(c);
          if (c.is_fraud) fraudRows++;
        }
        rows += batch.length;
        writeSync(fd, text);
      }
    } finally {
      closeSync(fd);
    }
    const columns = CHARGE_COLUMNS.map((c) => `${sqlString(c)}: ${sqlString(CSV_TYPES[c])}`).join(', ');
    const select = CHARGE_COLUMNS.map((c) => (c === 'ts' ? 'epoch_ms(ts) AS ts' : c)).join(', ');
    const instance = await DuckDBInstance.create(':memory:');
    try {
      const connection = await instance.connect();
      try {
        await connection.run(
          `COPY (SELECT ${select} FROM read_csv(${sqlString(csvPath)}, header = true, nullstr = '', columns = {${columns}}))
           TO ${sqlString(parquetTmp)} (FORMAT parquet, COMPRESSION zstd)`,
        );
      } finally {
        connection.closeSync();
      }
    } finally {
      instance.closeSync();
    }
    renameSync(parquetTmp, path);
    return { rows, fraudRows };
  } finally {
    rmSync(csvPath, { force: true });
    if (existsSync(parquetTmp)) rmSync(parquetTmp, { force: true });
  }
}
