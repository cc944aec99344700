import type { Row, Scalar, SourceDef } from '../define/types.ts';
import type { BadRowPolicy } from './bad-input.ts';
import { ident, openScratchDb } from './duck.ts';
import { stageSource } from './stage-source.ts';

/** A batch of events in (ts, seq) order: parallel arrays, rows carry schema and derived columns. */
export interface EventBatch {
  readonly ts: readonly number[];
  readonly seq: readonly number[];
  readonly rows: readonly Row[];
}

export interface ReadEventsOptions {
  /** Only events with `ts < until` (epoch ms). */
  readonly until?: number;
  readonly onBadRow?: BadRowPolicy;
  /** Directory relative source paths resolve against (default: the source's base dir, else cwd). */
  readonly baseDir?: string;
  readonly memoryLimit?: string;
  /** Called once at the end with the number of rows skipped as bad (policy `skip`). */
  readonly onBadRows?: (count: number) => void;
}

/**
 * Streams a source's events exactly as the backfill sees them: files read with DuckDB, types checked,
 * text times parsed by the shared parser, derived columns computed and the filter applied, ordered by
 * (ts, seq) with `seq = fileIndex * 2^32 + rowIndexInFile`. Memory stays bounded: DuckDB sorts (spilling
 * to disk) and batches of ~2048 events reach JS.
 *
 * @example
 * for await (const batch of readEvents(charges, { until: Date.parse('2024-06-01') })) {
 *   for (let i = 0; i < batch.rows.length; i++) agg.update(irs, batch.rows[i], batch.ts[i], batch.seq[i]);
 * }
 */
export async function* readEvents(
  source: SourceDef,
  options: ReadEventsOptions = {},
): AsyncGenerator<EventBatch> {
  const db = await openScratchDb({ memoryLimit: options.memoryLimit });
  try {
    const staged = await stageSource(db.conn, source, {
      baseDir: options.baseDir ?? source.baseDir ?? process.cwd(),
      onBadRow: options.onBadRow ?? 'fail',
      tableName: '__read',
    });
    const names = [...Object.keys(source.schema), ...Object.keys(source.derived)];
    const where = options.until === undefined ? '' : `WHERE __t < ${Number(options.until)}`;
    const result = await db.conn.stream(
      `SELECT __t, __seq, ${names.map(ident).join(', ')} FROM ${ident(staged.relation)} ${where} ORDER BY __t, __seq`,
    );
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) break;
      const cols = chunk.getColumns();
      const n = chunk.rowCount;
      const rows: Row[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const row: Row = {};
        for (let j = 0; j < names.length; j++) row[names[j]] = cols[2 + j][i] as Scalar | null;
        rows[i] = row;
      }
      yield { ts: cols[0] as number[], seq: cols[1] as number[], rows };
    }
    options.onBadRows?.(staged.badRows);
  } finally {
    db.close();
  }
}
