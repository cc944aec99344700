import { describe, expect, it } from 'vitest';
import { stringifyFloats } from '../../src/aggregate/ops/float-json.ts';
import type { JoinDef } from '../../src/define/types.ts';
import { emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import { JoinRows, type FeatureRow } from '../../src/serve/assemble.ts';
import { featureRowJson, featureRowsJson, joinRowJson, joinRowsJson } from '../../src/serve/feature-json.ts';
import { planFetch } from '../../src/serve/fetch-plan.ts';
import { createRng } from '../aggregate/support/prng.ts';
import { fetchedValues, modelA, modelB } from './fixtures.ts';

/** `JSON.stringify` but for non-finite floats (±Infinity as ±1e999, NaN null; float-json.ts). */
const stringify = (x: unknown): string => stringifyFloats(x);

describe('feature-json', () => {
  it('writes what JSON.stringify writes (non-finite numbers by the output rule), for random rows of every value kind', () => {
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
      [Infinity, 2.5, NaN, -Infinity],
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
      expect(featureRowsJson(rows)).toBe(stringify(rows));
      for (const row of rows) expect(featureRowJson(row)).toBe(stringify(row));
    }
  });

  it('writes an overflowed float as ±1e999 (read back as ±Infinity), not as a null that would read as an empty window', () => {
    const row = { features: { s: Infinity, n: -Infinity, x: NaN, k: [Infinity] }, status: {} } as FeatureRow;
    expect(featureRowJson(row)).toBe('{"features":{"s":1e999,"n":-1e999,"x":null,"k":[1e999]},"status":{}}');
    expect(JSON.parse(featureRowJson(row)).features).toEqual({
      s: Infinity,
      n: -Infinity,
      x: null,
      k: [Infinity],
    });
  });

  it('reflects a changed status map that is not frozen (only frozen ones are cached)', () => {
    const status: Record<string, string> = { a: 'ok' };
    const row = { features: { a: 1 }, status } as FeatureRow;
    expect(featureRowJson(row)).toBe('{"features":{"a":1},"status":{"a":"ok"}}');
    status.a = 'stale';
    expect(featureRowJson(row)).toBe('{"features":{"a":1},"status":{"a":"stale"}}');
  });

  it('writes rows straight from fetched values as JSON.stringify of the built rows (output rule for floats)', () => {
    const rng = createRng(29);
    const integers = [-0, 9, 10, 99, 100, -1000, 123456789012345, 999999999999999, -999999999999999];
    const values: unknown[] = [
      ...integers,
      2 ** 53,
      1e21,
      -2.5,
      1e-9,
      0.1 + 0.2,
      NaN,
      -Infinity,
      Infinity,
      [NaN, 1e308 * 10],
      null,
      undefined,
      'c"1',
      '日本 \u2028',
      [1, 'x'],
      {},
      true,
    ];
    // Same names as modelA, one of them an array index (objects enumerate those first): not direct.
    const indexed: JoinDef = {
      ...modelA,
      name: 'indexed',
      parts: [modelA.parts[0]!, { ...modelA.parts[1]!, prefix: '7' }],
    };
    for (const join of [modelA, modelB, indexed]) {
      for (let n = 0; n < 50; n++) {
        const rows = Array.from({ length: rng.int(1, 5) }, () => ({
          card_id: rng.chance(0.2) ? null : `c${rng.int(0, 3)}`,
          merchant_id: rng.chance(0.2) ? null : `m${rng.int(0, 3)}`,
          amount: 5,
          ts: 0,
        }));
        const plan = planFetch([join], rows, (g) => g.name);
        const fetched = fetchedValues(
          plan,
          () => rng.pick(values),
          () => rng.int(0, 2),
        );
        const stale = plan.groups.map(() => rng.chance(0.3));
        const emptyOf = (g: number) => {
          const e = emptyGroupValues(plan.groups[g]!.groupBy);
          return { status: e.status, values: e.values.flat() };
        };
        const joinRows = new JoinRows(plan.joins[0]!, fetched, rows, stale, emptyOf);
        const built = joinRows.toRows();
        expect(joinRowsJson(joinRows)).toBe(stringify(built));
        built.forEach((row, r) => expect(joinRowJson(joinRows, r)).toBe(stringify(row)));
      }
    }
  });

  it('writes integers digit by digit exactly as String does', () => {
    const rng = createRng(3);
    const join = modelA;
    const rows = [{ card_id: 'c', merchant_id: 'm', amount: 1, ts: 0 }];
    const plan = planFetch([join], rows, (g) => g.name);
    for (let n = 0; n < 300; n++) {
      const magnitude = 10 ** rng.int(0, 15);
      const fetched = fetchedValues(
        plan,
        () => Math.round((rng.next() - 0.5) * 2 * magnitude),
        () => 0,
      );
      const joinRows = new JoinRows(plan.joins[0]!, fetched, rows, [false, false], () => {
        throw new Error('no null keys here');
      });
      expect(joinRowsJson(joinRows)).toBe(JSON.stringify(joinRows.toRows()));
    }
  });
});
