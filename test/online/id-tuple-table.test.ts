import { describe, expect, it } from 'vitest';
import { IdTupleTable } from '../../src/online/id-tuple-table.ts';
import { rng } from '../support/rng.ts';

type V = { readonly ids: readonly number[]; readonly n: number };

describe('IdTupleTable', () => {
  it('matches a Map of joined ids through random adds, deletes and lookups (collisions, growth, backward shifts)', () => {
    for (const [k, range, capacity] of [
      [2, 6, 2],
      [2, 40, 4],
      [3, 5, 8],
      [1, 50, 2],
    ]) {
      const r = rng(k * 100 + range);
      const table = new IdTupleTable<V>(k, capacity);
      const oracle = new Map<string, V>();
      const tuple = () => Array.from({ length: k }, () => Math.floor(r() * range));
      // Lookups read column c of tuple i at ids[cols[c] * stride + i]: columns stored out of order.
      const stride = 3;
      const cols = Array.from({ length: k }, (_, c) => k - 1 - c);
      const lookup = (ids: readonly number[]) => {
        const buf = new Int32Array(k * stride).fill(-7);
        ids.forEach((id, c) => (buf[cols[c] * stride + 1] = id));
        return table.get(buf, cols, stride, 1);
      };
      for (let step = 0; step < 4000; step++) {
        const ids = tuple();
        const key = ids.join(',');
        const held = oracle.get(key);
        if (held === undefined && r() < 0.55) {
          const v = { ids, n: step };
          table.add(v);
          oracle.set(key, v);
        } else if (held !== undefined && r() < 0.45) {
          table.delete(held);
          oracle.delete(key);
        }
        expect(lookup(ids)).toBe(oracle.get(key));
        if (step % 97 === 0)
          for (const [key2, v] of oracle) expect(lookup(key2.split(',').map(Number))).toBe(v);
        expect(table.size).toBe(oracle.size);
      }
      table.clear();
      for (const v of oracle.values()) expect(lookup(v.ids)).toBeUndefined();
    }
  });

  it('refuses a capacity that is not a power of 2', () => {
    expect(() => new IdTupleTable(2, 1000)).toThrow(/power of 2/);
  });
});
