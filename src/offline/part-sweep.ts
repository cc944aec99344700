import { DOUBLE, type DuckDBConnection, type DuckDBDataChunk, type DuckDBResult } from '@duckdb/node-api';
import { createGroupAggregator } from '../aggregate/group-aggregator.ts';
import type { JoinPartDef, Row, Scalar } from '../define/types.ts';
import { ChunkAppender } from './chunk-appender.ts';
import { stagedType } from './column-kinds.ts';
import { checkStreamed, countRows, ident, siblingConnection } from './duck.ts';
import { KeySweeper } from './key-sweeper.ts';
import type { OutputColumn } from './output-columns.ts';
import { QUERY_TABLE } from './stage-left.ts';
import type { StagedSource } from './stage-source.ts';

/** Fine hash buckets of key ids; sweeps read contiguous ranges of them. */
const FINE_BUCKETS = 256;
/** Target rows (events + queries) per sorted bucket. */
const BUCKET_ROWS = 1_500_000;

/** A part whose events and queries are staged for sweeping (see `preparePart`). @internal */
export interface PreparedPart {
  readonly part: JoinPartDef;
  /** Table of events and queries with their key id and key-hash bucket. */
  readonly union: string;
  readonly inputs: readonly string[];
  /** Sorted buckets to sweep. */
  readonly buckets: number;
}

interface OpenBucket {
  readonly reader: DuckDBConnection;
  readonly result: DuckDBResult;
  readonly first: Promise<DuckDBDataChunk | null>;
}

/**
 * Stages one join part's sweep input: events and the `__q` rows, with key ids and buckets.
 *
 * DuckDB joins the left keys with the events (dropping events of keys no left row asks for, and events
 * outside every window any query of their key can see) and stages them with a key-hash bucket; `sweepPart`
 * then streams each bucket of events and queries in one order: key, time, queries before events at the same time (the
 * window end is strict), then rowId / seq. JS holds one key's tiles at a time and runs the `KeySweeper`
 * (aggregate/ ops only), so memory stays bounded by the largest key, not the data.
 * @internal
 */
export async function preparePart(
  conn: DuckDBConnection,
  part: JoinPartDef,
  staged: StagedSource,
  name: string,
): Promise<PreparedPart> {
  const groupBy = part.groupBy;
  const source = groupBy.source;
  const keyType = (k: string) => stagedType((source.schema[k] ?? source.derived[k]).type);
  const inputs = [...new Set(groupBy.aggregations.flatMap((a) => (a.input === null ? [] : [a.input])))];
  const inputType = (c: string) => stagedType((source.schema[c] ?? source.derived[c]).type);
  const keys = groupBy.keys.map((k, i) => ({
    k,
    alias: `__k${i}`,
    left: part.keyMapping[k],
    type: keyType(k),
  }));
  const keyAliases = keys.map((k) => k.alias).join(', ');

  const windows = groupBy.aggregations.flatMap((a) => a.windows);
  const bounded = windows.every((w) => w.sizeMs !== null);
  const lower = bounded
    ? `, min(LEAST(${windows.map((w) => `floor(__t / ${w.hopMs}) * ${w.hopMs} - ${w.sizeMs}`).join(', ')})) AS __tmin`
    : '';
  // Keys become dense integer ids (per distinct left key) so DuckDB sorts and JS compares numbers, not strings.
  const sameKey = (a: string, b: string) =>
    keys.map((k) => `${a}.${k.alias} = ${b}.${k.alias}`).join(' AND ');
  const sql = `
    WITH q AS (
      SELECT ${keys.map((k) => `TRY_CAST(${ident(k.left)} AS ${k.type.toString()}) AS ${k.alias}`).join(', ')}, __t, __rid
      FROM ${QUERY_TABLE}
    ),
    qk AS (
      SELECT *, CAST(row_number() OVER () AS DOUBLE) AS __kid FROM (
        SELECT ${keyAliases}, max(__t) AS __tmax${lower}
        FROM q WHERE ${keys.map((k) => `${k.alias} IS NOT NULL`).join(' AND ')} GROUP BY ${keyAliases}
      )
    ),
    e AS (
      SELECT qk.__kid, ev.__t, ev.__seq ${inputs.map((c, i) => `, ev.${ident(c)} AS __i${i}`).join('')}
      FROM ${ident(staged.relation)} ev JOIN qk ON ${keys.map((k) => `ev.${ident(k.k)} = qk.${k.alias}`).join(' AND ')}
      WHERE ev.__t < qk.__tmax ${bounded ? 'AND ev.__t >= qk.__tmin' : ''}
    )
    SELECT *, CAST(coalesce(__kid % ${FINE_BUCKETS}, 0) AS INTEGER) AS __b FROM (
      SELECT qk.__kid, 0 AS __kind, q.__t, CAST(q.__rid AS DOUBLE) AS __id
        ${inputs.map((c, i) => `, CAST(NULL AS ${inputType(c).toString()}) AS __i${i}`).join('')}
      FROM q LEFT JOIN qk ON ${sameKey('q', 'qk')}
      UNION ALL
      SELECT __kid, 1 AS __kind, __t, __seq AS __id ${inputs.map((_, i) => `, __i${i}`).join('')}
      FROM e
    )`;

  // Stage the stream once, on its own connection so it can run while another part is being swept.
  const union = `${name}_stream`;
  const own = await siblingConnection(conn);
  try {
    await own.run(`CREATE OR REPLACE TABLE ${ident(union)} AS ${sql}`);
    const rows = await countRows(own, ident(union));
    return {
      part,
      union,
      inputs,
      buckets: Math.min(FINE_BUCKETS, Math.max(1, Math.ceil(rows / BUCKET_ROWS))),
    };
  } finally {
    own.closeSync();
  }
}

/**
 * Sweeps a prepared part into table `resultTable` (`__rid`, features), bucket by bucket: DuckDB sorts
 * bucket b + 1 on another connection while JS sweeps bucket b, and no sort holds more than one bucket.
 * @internal
 */
export async function sweepPart(
  conn: DuckDBConnection,
  prepared: PreparedPart,
  columns: readonly OutputColumn[],
  resultTable: string,
  onProgress: (queries: number) => void,
): Promise<void> {
  const { part, union, inputs, buckets } = prepared;
  const groupBy = part.groupBy;
  const sweeper = new KeySweeper(groupBy, createGroupAggregator);
  const out: unknown[] = new Array(sweeper.featureCount);
  const writer = await ChunkAppender.create(conn, resultTable, [
    { name: '__rid', type: DOUBLE },
    ...columns.map((c) => ({ name: c.name, type: c.stagedType })),
  ]);
  const open = async (b: number): Promise<OpenBucket> => {
    const lo = Math.floor((b * FINE_BUCKETS) / buckets);
    const hi = Math.floor(((b + 1) * FINE_BUCKETS) / buckets);
    const reader = await siblingConnection(conn);
    const result = await reader.stream(
      `SELECT * EXCLUDE (__b) FROM ${ident(union)} WHERE __b >= ${lo} AND __b < ${hi} ORDER BY __kid, __t, __kind, __id`,
    );
    return { reader, result, first: result.fetchChunk() };
  };
  let prevKey: number | null | undefined;
  const row: Row = {};
  let next: Promise<OpenBucket> | null = open(0);
  for (let b = 0; next !== null; b++) {
    const current: OpenBucket = await next;
    next = b + 1 < buckets ? open(b + 1) : null;
    for (
      let pending: Promise<DuckDBDataChunk | null> = current.first;
      ;
      pending = current.result.fetchChunk()
    ) {
      const chunk = await pending;
      if (chunk === null) break;
      const n = chunk.rowCount;
      if (n === 0) break;
      const cols = chunk.getColumns();
      const kids = cols[0] as Array<number | null>;
      const kinds = cols[1] as number[];
      const times = cols[2] as number[];
      const ids = cols[3] as number[];
      let queries = 0;
      for (let i = 0; i < n; i++) {
        if (kids[i] !== prevKey) {
          prevKey = kids[i];
          sweeper.reset();
        }
        if (kinds[i] === 1) {
          for (let j = 0; j < inputs.length; j++) row[inputs[j]] = cols[4 + j][i] as Scalar | null;
          sweeper.event(row, times[i], ids[i]);
        } else {
          sweeper.query(times[i], out);
          writer.column(0).push(ids[i]);
          for (let f = 0; f < columns.length; f++) writer.column(f + 1).push(columns[f].toDuck(out[f]));
          writer.endRow();
          queries++;
        }
      }
      onProgress(queries);
    }
    current.reader.closeSync();
  }
  await conn.run(`DROP TABLE ${ident(union)}`);
  writer.close();
  checkStreamed(
    `the sweep of '${groupBy.name}'`,
    await countRows(conn, ident(resultTable)),
    await countRows(conn, QUERY_TABLE),
  );
}
