import { existsSync, renameSync, rmSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

export interface BenchData {
  readonly events: string;
  readonly left: string;
}

export interface GenerateOptions {
  readonly dir: string;
  readonly events: number;
  readonly left: number;
  readonly keys: number;
  readonly days: number;
  /** Key index = floor(keys * u^skew): 1 is uniform; 2 makes a few keys hot and leaves a long tail. */
  readonly skew: number;
  readonly seed: number;
}

const T0 = Date.UTC(2024, 0, 1);

/**
 * Seeded synthetic events (`key`, `amount`, `ts`) and left rows (`id`, `key`, `ts`) as Parquet. Values come
 * from DuckDB's `hash` of (row, seed), so the same options give the same files. Keys are skewed by `skew`,
 * and about 5% of left rows ask for keys that have no events.
 */
export async function generateBenchData(o: GenerateOptions): Promise<BenchData> {
  const tag = `k${o.keys}-d${o.days}-x${o.skew}-s${o.seed}`;
  const events = `${o.dir}/events-${o.events}-${tag}.parquet`;
  const left = `${o.dir}/left-${o.left}-${tag}.parquet`;
  const span = o.days * 86_400_000;
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  // u(i, salt) is a uniform [0, 1) number derived from the row, the seed and a salt.
  const u = (salt: number) => `(hash(i, ${o.seed}, ${salt}) % 1000000007)::DOUBLE / 1000000007`;
  const key = (salt: number, keys: number) => `'k' || floor(${keys} * pow(${u(salt)}, ${o.skew}))::BIGINT`;
  const write = async (path: string, select: string) => {
    if (existsSync(path)) return;
    const tmp = `${path}.tmp`;
    await conn.run(`COPY (${select}) TO '${tmp}' (FORMAT parquet, ROW_GROUP_SIZE 122880)`);
    renameSync(tmp, path);
  };
  try {
    await write(
      events,
      `SELECT ${key(1, o.keys)} AS key, round(${u(2)} * 500, 2) AS amount,
              make_timestamp((${T0} + floor(${u(3)} * ${span})::BIGINT) * 1000) AS ts
       FROM range(${o.events}) t(i)`,
    );
    await write(
      left,
      `SELECT i AS id, ${key(4, Math.ceil(o.keys * 1.05))} AS key,
              make_timestamp((${T0} + floor(${u(5)} * ${span})::BIGINT) * 1000) AS ts
       FROM range(${o.left}) t(i)`,
    );
  } catch (error) {
    rmSync(`${events}.tmp`, { force: true });
    rmSync(`${left}.tmp`, { force: true });
    throw error;
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return { events, left };
}
