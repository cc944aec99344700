import { rmSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { avg, col, eventSource, groupBy, join, max, stddev, sum, topK, variance } from '../../src/index.ts';
import { featureNames } from '../../src/define/feature-refs.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { readOutput, same, tempDir } from '../offline/support.ts';

/**
 * Float edge cases end to end (README "Semantics", float-json.ts): sums past the float range, variance
 * past it, tiny values. The HTTP fetch must equal the Parquet backfill: an overflow is ±Infinity in both
 * (±1e999 in the JSON, which the client reads back as ±Infinity), never null online and NaN offline.
 */

const T0 = Date.UTC(2024, 4, 1);
const MIN = 60_000;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('float edge cases online and offline', () => {
  it('serve exactly what the backfill writes, overflows as ±Infinity in both', async () => {
    const dir = tempDir('tessera-float-edges-');
    dirs.push(dir);
    const values: Record<string, number[]> = {
      big: [1e308, 1e308],
      neg: [-1e308, -1e308],
      wide: [1e300, -1e300],
      far: [-1e308, 1e308],
      tiny: [1e-300, 0],
      plain: [1.5, 2.5],
    };
    const events = Object.entries(values).flatMap(([key, xs]) =>
      xs.map((amount, i) => ({ key, amount, ts: T0 + (i + 1) * MIN })),
    );
    const dataFile = joinPath(dir, 'tx.jsonl');
    writeFileSync(dataFile, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const tx = eventSource({
      name: 'tx',
      path: dataFile,
      format: 'jsonl',
      timeColumn: 'ts',
      schema: { key: col.string(), amount: col.float().nullable(), ts: col.timestamp() },
    });
    const g = groupBy({
      name: 'g',
      source: tx,
      keys: ['key'],
      aggregations: [
        sum('amount', { windows: ['1d'] }),
        avg('amount', { windows: ['1h'] }),
        variance('amount', { windows: ['lifetime'] }),
        stddev('amount', { windows: ['lifetime'] }),
        max('amount', { windows: ['1d'] }),
        topK('amount', { k: 2, windows: ['1d'] }),
      ],
    });
    const model = join({ name: 'model', left: tx, parts: [{ groupBy: g, keys: { key: 'key' } }] });
    const repo = { sources: [tx], groupBys: [g], joins: [model] };

    const server = await startEmbedded({ repo, dataDir: joinPath(dir, 'online'), port: 0, store: 'lmdb' });
    const at = T0 + 10 * MIN;
    const keys = Object.keys(values);
    let online: { features: Record<string, unknown>; status: Record<string, string> }[];
    try {
      const client = createClient({ url: server.url });
      await client.ingest('tx', events);
      await server.drain();
      online = await client.features(
        model,
        keys.map((key) => ({ key, amount: null, ts: at })),
        { at },
      );
    } finally {
      await server.close();
    }
    const leftFile = joinPath(dir, 'left.jsonl');
    writeFileSync(
      leftFile,
      keys.map((key) => JSON.stringify({ key, amount: null, ts: at })).join('\n') + '\n',
    );
    const out = joinPath(dir, 'out.parquet');
    await runBackfill({ join: model, left: leftFile, out, progress: false });
    const offline = await readOutput(out);

    const mismatches: string[] = [];
    keys.forEach((key, i) => {
      for (const f of featureNames(model)) {
        const [got, want] = [online[i]!.features[f], offline[i]![f]];
        if (!same(got, want))
          mismatches.push(`${key} ${f}: online ${String(got)} vs offline ${String(want)}`);
        if (Number.isNaN(want)) mismatches.push(`${key} ${f}: offline NaN from finite values`);
      }
      expect(Object.values(online[i]!.status).every((s) => s === 'ok')).toBe(true);
    });
    expect(mismatches).toEqual([]);
    const feature = (key: string, name: string) => online[keys.indexOf(key)]!.features[name];
    expect(feature('big', 'g_amount_sum_1d')).toBe(Infinity); // was NaN offline, null online
    expect(feature('big', 'g_amount_avg_1h')).toBe(Infinity); // sum / count in float64 (DESIGN §1)
    expect(feature('neg', 'g_amount_sum_1d')).toBe(-Infinity);
    expect(feature('neg', 'g_amount_avg_1h')).toBe(-Infinity);
    expect(feature('wide', 'g_amount_variance_lifetime')).toBe(Infinity); // 1e600 overflows
    expect(feature('far', 'g_amount_variance_lifetime')).toBe(Infinity); // was 0 in one pass (x - mean overflowed)
    expect(feature('plain', 'g_amount_stddev_lifetime')).toBe(0.5);
  }, 60_000);
});
