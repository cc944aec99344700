import { DOUBLE, type DuckDBConnection, type DuckDBValue, type DuckDBVector } from '@duckdb/node-api';
import { parseEventTime } from '../aggregate/event-time.ts';
import { readOnlyRowMessage } from '../define/read-only-row.ts';
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
  const lazy = lazyRows(source, planned);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    const vectors = Array.from({ length: chunk.columnCount }, (_, j) => chunk.getColumnVector(j));
    read += chunk.rowCount;
    rows: for (let i = 0; i < chunk.rowCount; i++) {
      const seq = vectors[0].getItem(i) as number;
      const { row, values, derivedValues } = lazy(vectors, i);
      for (let j = 0; j < planned.length; j++) {
        const c = planned[j];
        if (!c.textTime) continue;
        const value = vectors[j + 1].getItem(i) as string | null;
        const ms = value === null ? null : parseEventTime(value);
        if (value !== null && ms === null) {
          fail(seq, c.name, `value ${JSON.stringify(value)} is not ${expectedText('timestamp')}`);
          continue rows;
        }
        values[j] = ms;
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
        derivedValues.set(name, value);
      }
      if (source.filter !== undefined && !source.filter(row)) continue;
      out.column(0).push(seq);
      let k = 1;
      for (const c of parsed) out.column(k++).push(row[c.name] as DuckDBValue);
      for (const [name] of derived) out.column(k++).push(derivedValues.get(name) as DuckDBValue);
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

const UNREAD = Symbol('unread');

/**
 * The rows the derived columns and the filter see: a schema value is decoded from its vector on first
 * read (they typically read a few of many columns), derived values appear as the pass sets them, and the
 * row is read-only to the definitions (the pass writes back only what it computed, so a change to a schema
 * value would be lost: it fails, naming the source).
 */
function lazyRows(source: SourceDef, planned: readonly PlannedColumn[]) {
  interface Target {
    readonly vectors: readonly DuckDBVector[];
    readonly i: number;
    readonly values: unknown[];
    readonly derivedValues: Map<string, Scalar | null>;
  }
  const index = new Map(planned.map((c, j) => [c.name, j]));
  const get = (t: Target, name: string | symbol): unknown => {
    if (typeof name !== 'string') return undefined;
    const j = index.get(name);
    if (j === undefined) return t.derivedValues.get(name);
    if (t.values[j] === UNREAD) t.values[j] = t.vectors[j + 1].getItem(t.i);
    return t.values[j];
  };
  const readOnly = (name: string | symbol): never => {
    throw new TypeError(readOnlyRowMessage(source.name, String(name)));
  };
  const has = (t: Target, name: string | symbol) =>
    typeof name === 'string' && (index.has(name) || t.derivedValues.has(name));
  const handler: ProxyHandler<Target> = {
    get,
    has,
    ownKeys: (t) => [...index.keys(), ...t.derivedValues.keys()],
    getOwnPropertyDescriptor: (t, name) =>
      has(t, name)
        ? { value: get(t, name), enumerable: true, configurable: true, writable: false }
        : undefined,
    set: (_, name) => readOnly(name),
    defineProperty: (_, name) => readOnly(name),
    deleteProperty: (_, name) => readOnly(name),
  };
  return (vectors: readonly DuckDBVector[], i: number) => {
    const target: Target = {
      vectors,
      i,
      values: new Array<unknown>(planned.length).fill(UNREAD),
      derivedValues: new Map(),
    };
    return { row: new Proxy(target, handler) as unknown as Row, ...target };
  };
}
