import { describe, expect, it } from 'vitest';
import { IdTupleTable } from '../../src/online/id-tuple-table.ts';
import { rng } from '../support/rng.ts';

type V = { slot: number; readonly ids: readonly number[]; readonly n: number };

describe('IdTupleTable', () => {
  it('matches a Map of joined ids through random adds, deletes, lookups and renumberings (collisions, growth, shrinking, backward shifts)', () => {
    for (const [k, range, capacity] of [
      [2, 6, 2],
      [2, 40, 4],
      [3, 5, 8],
      [1, 50, 2],
      [2, 300, 2],
    ]) {
      const r = rng(k * 100 + range);
      const table = new IdTupleTable<V>(k, capacity);
      let oracle = new Map<string, V>();
      const tuple = () => Array.from({ length: k }, () => Math.floor(r() * range));
      // Ids are read as column c of tuple i at ids[cols[c] * stride + i]: columns stored out of order.
      const stride = 3;
      const cols = Array.from({ length: k }, (_, c) => k - 1 - c);
      const strided = (ids: readonly number[]) => {
        const buf = new Int32Array(k * stride).fill(-7);
        ids.forEach((id, c) => (buf[cols[c] * stride + 1] = id));
        return buf;
      };
      const lookup = (ids: readonly number[]) => table.get(strided(ids), cols, stride, 1);
      let peak = 0;
      let shrank = false;
      const check = () => {
        peak = Math.max(peak, table.capacity);
        if (table.capacity < peak) shrank = true;
        expect(table.size).toBe(oracle.size);
        for (const [key, v] of oracle) {
          expect(lookup(key.split(',').map(Number))).toBe(v);
          for (let c = 0; c < k; c++) expect(table.idAt(v.slot, c)).toBe(v.ids[c]);
        }
        // Grown when half full, shrunk when under an eighth full.
        expect(table.capacity).toBeGreaterThanOrEqual(2 * table.size);
        expect(table.capacity).toBeLessThanOrEqual(Math.max(capacity, 8 * table.size));
      };
      for (let step = 0; step < 6000; step++) {
        // Phases of mostly adds, then mostly deletes, so the table grows and shrinks.
        const adding = Math.floor(step / 1500) % 2 === 0;
        // Deletes pick held tuples (a random tuple of a wide range is rarely held).
        const ids =
          adding || oracle.size === 0 ? tuple() : [...oracle.values()][Math.floor(r() * oracle.size)].ids;
        const key = ids.join(',');
        const held = oracle.get(key);
        if (held === undefined && r() < (adding ? 0.8 : 0.2)) {
          const v = { slot: -1, ids, n: step };
          table.add(v, strided(ids), cols, stride, 1);
          oracle.set(key, v);
        } else if (held !== undefined && r() < (adding ? 0.2 : 0.5)) {
          table.delete(held);
          expect(held.slot).toBe(-1);
          oracle.delete(key);
        }
        expect(lookup(ids)).toBe(oracle.get(key));
        if (step % 97 === 0) check();
        if (step % 1000 === 999) {
          // Renumber column c's ids (as the worker's key dictionaries do when they compact).
          const c = step % k;
          // A permutation of the ids from `moved` on, keeping those below (0: of them all); the table skips
          // the remap (keeps every slot) when column c holds none of the moved ids.
          const moved = step % 2000 === 999 ? 0 : Math.floor(r() * range);
          const map = Int32Array.from({ length: range }, (_, id) =>
            id < moved ? id : range - 1 - (id - moved),
          );
          const slots = [...oracle.values()].map((v) => v.slot);
          table.remapColumn(c, map, moved);
          if ([...oracle.values()].every((v) => v.ids[c] < moved))
            expect([...oracle.values()].map((v) => v.slot)).toEqual(slots);
          const next = new Map<string, V>();
          for (const v of oracle.values()) {
            const ids2 = v.ids.map((id, c2) => (c2 === c ? map[id] : id));
            (v as { ids: readonly number[] }).ids = ids2;
            next.set(ids2.join(','), v);
          }
          oracle = next;
          check();
        }
      }
      check();
      expect(shrank).toBe(true);
      const values = [...oracle.values()];
      table.clear();
      expect(table.capacity).toBe(capacity);
      for (const v of values) expect(lookup(v.ids)).toBeUndefined();
    }
  });

  it('refuses a capacity that is not a power of 2', () => {
    expect(() => new IdTupleTable(2, 1000)).toThrow(/power of 2/);
  });
});
