import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { DOUBLE } from '@duckdb/node-api';
import type { JoinDef, Row, Scalar } from '../define/types.ts';
import { ChunkAppender } from './chunk-appender.ts';
import { fitsType } from './column-kinds.ts';
import { checkStreamed, countRows, ident } from './duck.ts';
import type { OutputColumn } from './output-columns.ts';
import { LEFT_TABLE, QUERY_TABLE } from './stage-left.ts';

/**
 * Runs the join's derivations last, per left row, on the finished features of every part (read back from
 * the part result tables) and the left row, into `table` (`__rid`, one column per derivation).
 * The left row's time column is given as epoch ms; other left values as read (BIGINT as number).
 * @internal
 */
export async function computeDerivations(
  conn: DuckDBConnection,
  join: JoinDef,
  leftColumns: readonly string[],
  partColumns: readonly (readonly OutputColumn[])[],
  columns: readonly OutputColumn[],
  table: string,
): Promise<void> {
  const features = partColumns.flatMap((cols, p) => cols.map((c) => ({ c, sql: `r${p}.${ident(c.name)}` })));
  const sql =
    `SELECT CAST(q.__rid AS DOUBLE), q.__t, ${[...leftColumns.map((c) => `l.${ident(c)}`), ...features.map((f) => f.sql)].join(', ')} ` +
    `FROM ${QUERY_TABLE} q JOIN ${LEFT_TABLE} l ON l.rowid = q.__rid ` +
    partColumns.map((_, p) => `JOIN __res${p} r${p} ON r${p}.__rid = q.__rid`).join(' ');
  const writer = await ChunkAppender.create(conn, table, [
    { name: '__rid', type: DOUBLE },
    ...columns.map((c) => ({ name: c.name, type: c.stagedType })),
  ]);
  const result = await conn.stream(sql);
  const nl = leftColumns.length;
  let read = 0;
  const featureIndex = new Map(features.map((f, i) => [f.c.name, i]));
  const leftIndex = new Map(leftColumns.map((c, i) => [c, i]));
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    // Values are decoded only when a derivation reads them: most read a handful of many features.
    const vectors = Array.from({ length: chunk.columnCount }, (_, i) => chunk.getColumnVector(i));
    const featuresOf = lazyRecord(featureIndex, (i, row) =>
      fromDuck(features[i].c, vectors[2 + nl + i].getItem(row)),
    );
    const leftOf = lazyRecord(leftIndex, (i, row) =>
      leftColumns[i] === join.left.timeColumn
        ? (vectors[1].getItem(row) as number)
        : toScalar(vectors[2 + i].getItem(row)),
    );
    read += chunk.rowCount;
    for (let i = 0; i < chunk.rowCount; i++) {
      const rid = vectors[0].getItem(i) as number;
      const values = featuresOf(i);
      const row = leftOf(i) as Row;
      writer.column(0).push(rid);
      join.derivations.forEach((d, k) => {
        let value: unknown;
        try {
          value = d.fn(values, row);
        } catch (error) {
          throw new Error(
            `Join '${join.name}': derivation '${d.name}' threw on left row ${rid + 1}: ` +
              `${error instanceof Error ? error.message : String(error)}. Fix: guard the function against this input (e.g. null features).`,
            { cause: error },
          );
        }
        if (value === undefined || (typeof value === 'number' && !Number.isFinite(value))) value = null;
        if (value !== null && !fitsType(value as Scalar, d.type)) {
          throw new Error(
            `Join '${join.name}': derivation '${d.name}' returned ${JSON.stringify(value)} on left row ${rid + 1}, ` +
              `but it is declared ${d.type}. Fix: return a ${d.type} or null, or change its declared type.`,
          );
        }
        writer.column(k + 1).push(columns[k].toDuck(value));
      });
      writer.endRow();
    }
  }
  writer.close();
  checkStreamed(`derivations of join '${join.name}'`, read, await countRows(conn, QUERY_TABLE));
}

/** A read-only record per row whose properties decode their column value on first read. */
function lazyRecord(
  index: ReadonlyMap<string, number>,
  read: (column: number, row: number) => unknown,
): (row: number) => Record<string, unknown> {
  const handler: ProxyHandler<{ row: number; cache: Map<number, unknown> }> = {
    get(target, name) {
      const i = typeof name === 'string' ? index.get(name) : undefined;
      if (i === undefined) return undefined;
      if (!target.cache.has(i)) target.cache.set(i, read(i, target.row));
      return target.cache.get(i);
    },
    has: (_, name) => typeof name === 'string' && index.has(name),
    ownKeys: () => [...index.keys()],
    getOwnPropertyDescriptor(target, name) {
      if (typeof name !== 'string' || !index.has(name)) return undefined;
      return {
        enumerable: true,
        configurable: true,
        writable: false,
        value: handler.get!(target, name, target),
      };
    },
    set: () => false,
  };
  return (row) => new Proxy({ row, cache: new Map() }, handler) as unknown as Record<string, unknown>;
}

/** A left value as the JS scalar the definitions expect. */
function toScalar(value: DuckDBValue): Scalar | null {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'object' && 'micros' in value)
    return Number((value as { micros: bigint }).micros / 1000n);
  return String(value);
}

/** A feature value read back from its result column, as the sweep produced it. */
function fromDuck(column: OutputColumn, value: DuckDBValue): unknown {
  if (value === null) return null;
  if (column.kind === 'json-text') return JSON.parse(value as string);
  if (column.kind === 'list')
    return (value as unknown as { items: DuckDBValue[] }).items.map((v) => toScalar(v));
  return toScalar(value);
}
