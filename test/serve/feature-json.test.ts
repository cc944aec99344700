import { describe, expect, it } from 'vitest';
import type { FeatureRow } from '../../src/serve/assemble.ts';
import { featureRowJson, featureRowsJson } from '../../src/serve/feature-json.ts';
import { createRng } from '../aggregate/support/prng.ts';

describe('feature-json', () => {
  it('writes exactly what JSON.stringify writes, for random rows of every value kind', () => {
    const rng = createRng(17);
    const values: unknown[] = [
      0,
      -0,
      1.5,
      -3e-7,
      1e21,
      2 ** 53 + 2,
      NaN,
      Infinity,
      -Infinity,
      null,
      undefined,
      true,
      false,
      '',
      'a"b\\c',
      'line\nbreak',
      '日本 Éclair \u2028',
      { x: 1, 'y"': [1, null] },
      {},
      [3, 'x', null],
      [{ v: 1, ts: 2 }],
    ];
    const names = ['g0_count_1h', 'weird "name"', '10', 'a\\b', 'ünï'];
    const shared = Object.freeze({ g0_count_1h: 'ok', other: 'missing_key' });
    for (let n = 0; n < 200; n++) {
      const rows: FeatureRow[] = Array.from({ length: rng.int(0, 4) }, () => {
        const features: Record<string, unknown> = {};
        for (const name of rng.shuffle([...names]).slice(0, rng.int(0, names.length)))
          features[name] = rng.pick(values);
        const status = rng.chance(0.5) ? shared : { [rng.pick(names)]: 'stale' };
        return { features, status } as FeatureRow;
      });
      expect(featureRowsJson(rows)).toBe(JSON.stringify(rows));
      for (const row of rows) expect(featureRowJson(row)).toBe(JSON.stringify(row));
    }
  });

  it('reflects a changed status map that is not frozen (only frozen ones are cached)', () => {
    const status: Record<string, string> = { a: 'ok' };
    const row = { features: { a: 1 }, status } as FeatureRow;
    expect(featureRowJson(row)).toBe('{"features":{"a":1},"status":{"a":"ok"}}');
    status.a = 'stale';
    expect(featureRowJson(row)).toBe('{"features":{"a":1},"status":{"a":"stale"}}');
  });
});
