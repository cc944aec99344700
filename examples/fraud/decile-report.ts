/**
 * Fraud rate by feature decile: the quickest check that a feature carries signal. If the top deciles of
 * a feature show a much higher fraud rate than the base rate, the feature separates fraud from traffic.
 *
 * DuckDB only ranks the backfill output here (reporting); features themselves come from Tessera.
 */
import { DuckDBInstance } from '@duckdb/node-api';

export interface DecileRow {
  /** 1-based deciles this row covers (several when ties make adjacent deciles hold one single value). */
  readonly deciles: readonly number[];
  readonly min: number;
  readonly max: number;
  readonly rows: number;
  readonly fraud: number;
}

export interface DecileReport {
  readonly feature: string;
  readonly rows: readonly DecileRow[];
  /** Rows where the feature is null (e.g. a ratio with no history). */
  readonly nullRows: number;
  readonly nullFraud: number;
  /** The highest 1% of non-null rows: rare patterns show more sharply there than in a whole decile. */
  readonly top1: DecileRow;
}

const quoteIdent = (s: string): string => `"${s.replaceAll('"', '""')}"`;
const quoteString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Ranks the rows of a Parquet file by `feature` into ten equal-size deciles and counts the rows labeled
 * fraud in each. Ties are ordered by `tieBreak` so the result is deterministic; adjacent deciles that hold
 * only one and the same value are merged, since splitting a tie between them would be arbitrary.
 *
 * @example
 * const report = await fraudRateByDecile('out/fraud_model.parquet', 'card_velocity_count_1h');
 * console.log(formatDecileReport(report, baseRate));
 */
export async function fraudRateByDecile(
  parquetPath: string,
  feature: string,
  options: { label?: string; tieBreak?: string } = {},
): Promise<DecileReport> {
  const label = quoteIdent(options.label ?? 'is_fraud');
  const tieBreak = quoteIdent(options.tieBreak ?? 'charge_id');
  const f = quoteIdent(feature);
  const file = `read_parquet(${quoteString(parquetPath)})`;
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      const deciles = await connection.runAndReadAll(
        `SELECT decile, min(v)::DOUBLE, max(v)::DOUBLE, count(*)::INTEGER, count(*) FILTER (WHERE y)::INTEGER
         FROM (SELECT ${f}::DOUBLE AS v, ${label} AS y, ntile(10) OVER (ORDER BY ${f}, ${tieBreak}) AS decile
               FROM ${file} WHERE ${f} IS NOT NULL)
         GROUP BY decile ORDER BY decile`,
      );
      const top1 = await connection.runAndReadAll(
        `SELECT min(v)::DOUBLE, max(v)::DOUBLE, count(*)::INTEGER, count(*) FILTER (WHERE y)::INTEGER
         FROM (SELECT ${f}::DOUBLE AS v, ${label} AS y, ntile(100) OVER (ORDER BY ${f}, ${tieBreak}) AS pct
               FROM ${file} WHERE ${f} IS NOT NULL)
         WHERE pct = 100`,
      );
      const nulls = await connection.runAndReadAll(
        `SELECT count(*)::INTEGER, count(*) FILTER (WHERE ${label})::INTEGER FROM ${file} WHERE ${f} IS NULL`,
      );
      const raw = deciles.getRowsJS().map(([d, min, max, rows, fraud]) => ({
        deciles: [Number(d)],
        min: Number(min),
        max: Number(max),
        rows: Number(rows),
        fraud: Number(fraud),
      }));
      const [nullRows, nullFraud] = nulls.getRowsJS()[0].map(Number);
      const [tMin, tMax, tRows, tFraud] = top1.getRowsJS()[0].map(Number);
      const top: DecileRow = { deciles: [], min: tMin, max: tMax, rows: tRows, fraud: tFraud };
      return { feature, rows: mergeTies(raw), nullRows, nullFraud, top1: top };
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

function mergeTies(rows: DecileRow[]): DecileRow[] {
  const out: DecileRow[] = [];
  for (const row of rows) {
    const prev = out[out.length - 1];
    if (prev && prev.min === prev.max && row.min === row.max && prev.max === row.min) {
      out[out.length - 1] = {
        deciles: [...prev.deciles, ...row.deciles],
        min: prev.min,
        max: prev.max,
        rows: prev.rows + row.rows,
        fraud: prev.fraud + row.fraud,
      };
    } else out.push(row);
  }
  return out;
}

const pct = (part: number, whole: number): string =>
  whole === 0 ? '-' : `${((100 * part) / whole).toFixed(2)}%`;
const num = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** Renders a report as a small text table with a bar per decile scaled to the highest fraud rate. */
export function formatDecileReport(report: DecileReport, baseRate: number): string {
  const rates = report.rows.map((r) => (r.rows ? r.fraud / r.rows : 0));
  const top1Rate = report.top1.rows ? report.top1.fraud / report.top1.rows : 0;
  const top = Math.max(...rates, top1Rate, baseRate, 1e-9);
  const lines = [`  ${report.feature}`];
  const line = (label: string, r: DecileRow, rate: number): string => {
    const range = r.min === r.max ? num(r.min) : `${num(r.min)} .. ${num(r.max)}`;
    const bar = '#'.repeat(Math.round((rate / top) * 30));
    const lift = baseRate > 0 ? `${(rate / baseRate).toFixed(1)}x` : '';
    const fraud = pct(r.fraud, r.rows).padStart(7);
    return `    ${label.padEnd(12)} ${range.padEnd(20)} ${String(r.rows).padStart(8)} rows  fraud ${fraud} ${lift.padStart(6)}  ${bar}`.trimEnd();
  };
  report.rows.forEach((r, i) => {
    const d =
      r.deciles.length === 1 ? `${r.deciles[0]}` : `${r.deciles[0]}-${r.deciles[r.deciles.length - 1]}`;
    lines.push(line(`decile ${d}`, r, rates[i]));
  });
  if (report.top1.rows > 0) lines.push(line('top 1%', report.top1, top1Rate));
  if (report.nullRows > 0) {
    lines.push(
      `    ${'null'.padEnd(12)} ${''.padEnd(20)} ${String(report.nullRows).padStart(8)} rows  ` +
        `fraud ${pct(report.nullFraud, report.nullRows).padStart(7)}`,
    );
  }
  return lines.join('\n');
}
