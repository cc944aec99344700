import { describe, expect, it } from 'vitest';
import { mergePacked, packTiles, unpackTiles, type PackedWrite } from '../../src/online/tile-pack.ts';
import type { StoredTile } from '../../src/online/store.ts';
import { rng } from './fixtures.ts';

/** The obvious implementation: unpack into a map by address, apply writes in order, sort, pack. */
function naiveMerge(current: readonly StoredTile[], writes: readonly PackedWrite[]): StoredTile[] {
  const byAddress = new Map(current.map((t) => [`${t.level}:${t.start}`, t]));
  for (const w of writes) {
    if (w.bytes === null) byAddress.delete(`${w.level}:${w.start}`);
    else byAddress.set(`${w.level}:${w.start}`, { level: w.level, start: w.start, bytes: w.bytes });
  }
  return [...byAddress.values()].sort((a, b) => a.level - b.level || a.start - b.start);
}

describe('tile packing', () => {
  it('mergePacked equals unpack + apply writes in order + pack, for random entities and writes', () => {
    const r = rng(42);
    const levels = [-1, 0, 1, 1000, 60_000, 3_600_000];
    const tile = (): StoredTile => {
      const level = levels[Math.floor(r() * levels.length)];
      const bytes = Uint8Array.from({ length: Math.floor(r() * 6) }, () => Math.floor(r() * 256));
      return { level, start: Math.max(0, level) * Math.floor(r() * 8) - (r() < 0.1 ? 2 ** 40 : 0), bytes };
    };
    for (let c = 0; c < 500; c++) {
      const current = naiveMerge([], Array.from({ length: Math.floor(r() * 12) }, tile));
      const packed = current.length === 0 && r() < 0.5 ? undefined : packTiles(current);
      const writes: PackedWrite[] = Array.from({ length: Math.floor(r() * 10) }, () => {
        const t = r() < 0.4 && current.length > 0 ? current[Math.floor(r() * current.length)] : tile();
        return r() < 0.3
          ? { level: t.level, start: t.start, bytes: null }
          : { ...tile(), level: t.level, start: t.start };
      });
      const want = naiveMerge(current, writes);
      const got = mergePacked(packed, [...writes]);
      if (want.length === 0) expect(got).toBeNull();
      else
        expect(unpackTiles(got!).map((t) => ({ ...t, bytes: [...t.bytes] }))).toEqual(
          want.map((t) => ({ ...t, bytes: [...t.bytes] })),
        );
    }
  });

  it('rejects a corrupt packed value naming the fix', () => {
    const packed = packTiles([{ level: 1, start: 0, bytes: new Uint8Array([1, 2]) }]);
    expect(() => mergePacked(packed.subarray(0, packed.length - 1), [])).toThrow(/corrupt.*re-upload/);
  });
});
