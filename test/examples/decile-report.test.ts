import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDecileReport, fraudRateByDecile } from '../../examples/fraud/decile-report.ts';

describe('fraud rate by decile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-deciles-'));
  const file = join(dir, 'rows.parquet');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeAll(async () => {
    // 1000 rows: 700 with f = 0 (1 in 100 fraud), 300 with f = 1..300 (fraud when f > 250), 50 nulls.
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(`COPY (
      SELECT printf('r%04d', i) AS charge_id, CASE WHEN i < 700 THEN 0 ELSE i - 699 END AS f,
             CASE WHEN i < 700 THEN i % 100 = 0 ELSE i - 699 > 250 END AS is_fraud FROM range(1000) t(i)
      UNION ALL SELECT printf('n%04d', i), NULL, i % 10 = 0 FROM range(50) t(i)
    ) TO '${file}' (FORMAT parquet)`);
    connection.closeSync();
    instance.closeSync();
  });

  it('ranks into deciles, merges deciles of one tied value, counts nulls and the top 1%', async () => {
    const report = await fraudRateByDecile(file, 'f');
    expect(report.rows.map((r) => [r.deciles, r.min, r.max, r.rows, r.fraud])).toEqual([
      [[1, 2, 3, 4, 5, 6, 7], 0, 0, 700, 7],
      [[8], 1, 100, 100, 0],
      [[9], 101, 200, 100, 0],
      [[10], 201, 300, 100, 50],
    ]);
    expect([report.nullRows, report.nullFraud]).toEqual([50, 5]);
    expect(report.top1).toMatchObject({ min: 291, max: 300, rows: 10, fraud: 10 });
    expect(formatDecileReport(report, 0.05)).toMatchInlineSnapshot(`
      "  f
          decile 1-7   0                         700 rows  fraud   1.00%   0.2x
          decile 8     1 .. 100                  100 rows  fraud   0.00%   0.0x
          decile 9     101 .. 200                100 rows  fraud   0.00%   0.0x
          decile 10    201 .. 300                100 rows  fraud  50.00%  10.0x  ###############
          top 1%       291 .. 300                 10 rows  fraud 100.00%  20.0x  ##############################
          null                                    50 rows  fraud  10.00%"
    `);
  });
});
