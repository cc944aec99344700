import { describe, expect, it } from 'vitest';
import { planFetch } from '../../src/serve/fetch-plan.ts';
import { count, groupBy, join, sum } from '../../src/index.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { cardStats, modelA, modelB, tx } from './fixtures.ts';

const byName = (g: { name: string }) => `id-${g.name}`;

describe('planFetch', () => {
  it('lists each (group-by, key) once across joins and rows', () => {
    const rows = [
      { card_id: 'c1', merchant_id: 'm1' },
      { card_id: 'c2', merchant_id: 'm1' },
      { card_id: 'c1', merchant_id: 'm2' },
    ];
    const plan = planFetch([modelA, modelB], rows, byName);
    expect(plan.groups.map((g) => [g.id, g.keys])).toEqual([
      ['id-card_stats', ['c1', 'c2']],
      ['id-merchant_stats', ['m1', 'm2']],
    ]);
    expect(plan.joins[0]!.groupOfPart).toEqual([0, 1]);
    expect(plan.joins[1]!.groupOfPart).toEqual([0]);
    expect(plan.joins[0]!.slots.map((s) => [...s])).toEqual([
      [0, 0],
      [1, 0],
      [0, 1],
    ]);
    expect(plan.joins[1]!.slots.map((s) => [...s])).toEqual([[0], [1], [0]]);
  });

  it('shares equal group-bys built separately (same semantic hash) in one read', () => {
    const twin = groupBy({
      name: 'card_stats_copy',
      source: tx,
      keys: ['card_id'],
      owner: 'another-team',
      aggregations: [count({ windows: ['1h', '1d'] }), sum('amount', { windows: ['1d'] })],
    });
    const other = join({ name: 'other', left: tx, parts: [{ groupBy: twin, keys: { card_id: 'card_id' } }] });
    const plan = planFetch([modelB, other], [{ card_id: 'c1' }], groupById);
    expect(plan.groups).toHaveLength(1);
    expect(plan.groups[0]!.keys).toEqual(['c1']);
  });

  it('keeps a separate entry (same id) for an equal group-by listing windows in another order', () => {
    const reordered = groupBy({
      name: 'card_stats_reordered',
      source: tx,
      keys: ['card_id'],
      aggregations: [count({ windows: ['1d', '1h'] }), sum('amount', { windows: ['1d'] })],
    });
    const other = join({
      name: 'other',
      left: tx,
      parts: [{ groupBy: reordered, keys: { card_id: 'card_id' } }],
    });
    const plan = planFetch([modelB, other], [{ card_id: 'c1' }], groupById);
    expect(plan.groups.map((g) => g.id)).toEqual([groupById(cardStats), groupById(cardStats)]);
    expect(plan.groups[1]!.groupBy).toBe(reordered);
  });

  it('gives null keys slot -1 and reads nothing for them', () => {
    const plan = planFetch([modelA], [{ card_id: null, merchant_id: 'm1' }], byName);
    expect(plan.groups[0]!.keys).toEqual([]);
    expect([...plan.joins[0]!.slots[0]!]).toEqual([-1, 0]);
  });

  it('dedupes keys of a group-by read through parts with different key columns', () => {
    const both = join({
      name: 'both',
      left: tx,
      parts: [
        { groupBy: cardStats, keys: { card_id: 'card_id' } },
        { groupBy: cardStats, keys: { card_id: 'merchant_id' }, prefix: 'x' },
      ],
    });
    const rows = [
      { card_id: 'a', merchant_id: 'b' },
      { card_id: 'b', merchant_id: 'a' },
      { card_id: 'c', merchant_id: null },
    ];
    for (let repeat = 0; repeat < 2; repeat++) {
      const plan = planFetch([both], rows, byName);
      expect(plan.groups.map((g) => g.keys)).toEqual([['a', 'b', 'c']]);
      expect(plan.joins[0]!.slots.map((s) => [...s])).toEqual([
        [0, 1],
        [1, 0],
        [2, -1],
      ]);
    }
  });

  it('plans many rows (map dedupe) like few rows (scan dedupe)', () => {
    const rows = Array.from({ length: 40 }, (_, i) => ({
      card_id: i % 7 === 0 ? null : `c${i % 5}`,
      merchant_id: `m${i % 3}`,
    }));
    const all = planFetch([modelA, modelB], rows, byName);
    const one = rows.map((row) => planFetch([modelA, modelB], [row], byName));
    all.joins.forEach((pj, j) =>
      pj.slots.forEach((rowSlots, r) =>
        rowSlots.forEach((slot, p) => {
          const g = pj.groupOfPart[p]!;
          const single = one[r]!.joins[j]!.slots[0]![p]!;
          expect(slot < 0 ? null : all.groups[g]!.keys[slot]).toBe(
            single < 0 ? null : one[r]!.groups[g]!.keys[single],
          );
        }),
      ),
    );
    expect(all.groups[0]!.keys).toEqual(['c1', 'c2', 'c3', 'c4', 'c0']);
  });
});
