import { DOUBLE, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { parseEventTime } from '../aggregate/event-time.ts';
import type { ColumnType, Row, Scalar, SourceDef } from '../define/types.ts';
import { BadInputError, SKIP_HINT, type BadRowPolicy } from './bad-input.ts';
import { ChunkAppender } from './chunk-appender.ts';
import { expectedText, fitsType, stagedType } from './column-kinds.ts';
import { checkStreamed, countRows, ident } from './duck.ts';

/** A schema column as staged. @internal */
export interface PlannedColumn {
  readonly name: string;
  readonly type: ColumnType;
  /** Timestamps held as text until JS parses them with the shared `parseEventTime`. */
  readonly textTime: boolean;
}

/**
 * The JS pass for sources that need it: parses text times with the shared parser, computes derived
 * columns in declaration order, applies the filter, and writes clean events to `relation`.
 * Returns the number of rows skipped as bad.
 *
 * JS writes back only what it computed (seq, parsed times, derived columns) for the rows it keeps, and
 * DuckDB joins that with `raw` on seq (in source order, as before): handing every string column back
 * through the appender cost more than reading it.
 * @internal
 */
export async function transformInJs(
  conn: DuckDBConnection,
  source: SourceDef,
  planned: readonly PlannedColumn[],
  raw: string,
  seqSql: string,
  relation: string,
  policy: BadRowPolicy,
  locate: (seq: number) => { file: string; row: number },
): Promise<number> {
  const derived = Object.entries(source.derived);
  const parsed = planned.filter((c) => c.textTime);
  const computed = `${relation}_js`;
  const out = await ChunkAppender.create(conn, computed, [
    { name: '__seq', type: DOUBLE },
    ...parsed.map((c) => ({ name: c.name, type: stagedType(c.type) })),
    ...derived.map(([name, d]) => ({ name, type: stagedType(d.type) })),
  ]);
  const cols = planned.map((c) => ident(c.name)).join(', ');
  const expected = await countRows(conn, `${ident(raw)} WHERE __bad IS NULL`);
  const result = await conn.stream(
    `SELECT ${seqSql} AS __seq, ${cols} FROM ${ident(raw)} WHERE __bad IS NULL`,
  );
  let bad = 0;
  let read = 0;
  const fail = (seq: number, column: string, problem: string, cause?: unknown) => {
    if (policy === 'skip') return void bad++;
    throw new BadInputError({ source: source.name, ...locate(seq), column }, problem, SKIP_HINT, { cause });
  };
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    const columns = chunk.getColumns();
    read += chunk.rowCount;
    rows: for (let i = 0; i < chunk.rowCount; i++) {
      const seq = columns[0][i] as number;
      const row: Row = {};
      for (let j = 0; j < planned.length; j++) {
        const c = planned[j];
        let value = columns[j + 1][i] as Scalar | null;
        if (c.textTime && value !== null) {
          const ms = parseEventTime(value);
          if (ms === null) {
            fail(seq, c.name, `value ${JSON.stringify(value)} is not ${expectedText('timestamp')}`);
            continue rows;
          }
          value = ms;
        }
        row[c.name] = value;
      }
      for (const [name, d] of derived) {
        let value: Scalar | null;
        try {
          value = d.fn(row) ?? null;
        } catch (error) {
          fail(
            seq,
            name,
            `derived column '${name}' threw: ${error instanceof Error ? error.message : String(error)}`,
            error,
          );
          continue rows;
        }
        if (value !== null && !fitsType(value, d.type)) {
          fail(
            seq,
            name,
            `derived column '${name}' returned ${JSON.stringify(value)}, not ${expectedText(d.type)}`,
          );
          continue rows;
        }
        row[name] = value;
      }
      if (source.filter !== undefined && !source.filter(row)) continue;
      out.column(0).push(seq);
      let k = 1;
      for (const c of parsed) out.column(k++).push(row[c.name] as DuckDBValue);
      for (const [name] of derived) out.column(k++).push(row[name] as DuckDBValue);
      out.endRow();
    }
  }
  out.close();
  checkStreamed(`source '${source.name}'`, read, expected);
  const from = (name: string) => (planned.some((c) => c.textTime && c.name === name) ? 'j' : 'r');
  await conn.run(
    `CREATE OR REPLACE TABLE ${ident(relation)} AS SELECT j.__seq, ${from(source.timeColumn)}.${ident(source.timeColumn)} AS __t` +
      planned.map((c) => `, ${from(c.name)}.${ident(c.name)}`).join('') +
      derived.map(([name]) => `, j.${ident(name)}`).join('') +
      ` FROM (SELECT ${seqSql} AS __seq, * FROM ${ident(raw)} WHERE __bad IS NULL) r JOIN ${ident(computed)} j ON r.__seq = j.__seq ORDER BY j.__seq`,
  );
  await conn.run(`DROP TABLE ${ident(computed)}`);
  return bad;
}
