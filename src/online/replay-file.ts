import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';

/**
 * Reads a replay file as batches of plain JSON-like events for `ingestEvents` (which validates them).
 * Formats by extension: `.jsonl`/`.ndjson` (one object per line, streamed), `.json` (an array), and
 * `.parquet`/`.csv` (via DuckDB, streamed; BIGINTs become numbers and timestamps epoch ms).
 *
 * @example
 * for await (const batch of readReplayFile('charges.jsonl', 5000)) await ingestEvents(log, charges, groupBys, batch);
 */
export async function* readReplayFile(path: string, batchSize = 5000): AsyncGenerator<unknown[]> {
  const lower = path.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) {
    const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
    let batch: unknown[] = [];
    let lineNo = 0;
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      try {
        batch.push(JSON.parse(line));
      } catch (cause) {
        throw new Error(
          `replay file '${path}', line ${lineNo}: not valid JSON (${(cause as Error).message}). Each line must be one JSON object.`,
          { cause },
        );
      }
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
    return;
  }
  if (lower.endsWith('.json')) {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (!Array.isArray(parsed))
      throw new Error(
        `replay file '${path}': expected a JSON array of events; use .jsonl for one event per line.`,
      );
    for (let i = 0; i < parsed.length; i += batchSize) yield parsed.slice(i, i + batchSize);
    return;
  }
  if (lower.endsWith('.parquet') || lower.endsWith('.csv')) {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    try {
      const quoted = `'${path.replaceAll("'", "''")}'`;
      const reader = lower.endsWith('.parquet') ? `read_parquet(${quoted})` : `read_csv(${quoted})`;
      const result = await conn.stream(`SELECT * FROM ${reader}`);
      for await (const rows of result.yieldRowObjectJs()) {
        const batch = rows.map((r) => {
          const out: Record<string, unknown> = {};
          for (const k in r) {
            const v = r[k] as unknown;
            out[k] = typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.getTime() : v;
          }
          return out;
        });
        for (let i = 0; i < batch.length; i += batchSize) yield batch.slice(i, i + batchSize);
      }
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
    return;
  }
  throw new Error(`replay file '${path}': unknown format; use .jsonl, .ndjson, .json, .parquet or .csv.`);
}
