import { describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import {
  mergePacked,
  PackedBuffer,
  packTiles,
  tilesEnd,
  unpackTiles,
  TileColumns,
  type PackedWrite,
} from '../../src/online/tile-pack.ts';
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

  it('with runs and a reused output buffer: tiles merged, run kept, dropped or appended, tilesEnd reported', () => {
    const r = rng(7);
    const levels = [-1, 0, 1000, 60_000];
    const bytes = (max: number) =>
      Uint8Array.from({ length: Math.floor(r() * max) }, () => Math.floor(r() * 256));
    const tile = (): StoredTile => ({
      level: levels[Math.floor(r() * 4)],
      start: Math.floor(r() * 4) * 60_000,
      bytes: bytes(90),
    });
    const into = new PackedBuffer();
    into.bytes = Buffer.alloc(8); // grows on demand
    const shown = (list: readonly StoredTile[]) => list.map((t) => ({ ...t, bytes: [...t.bytes] }));
    for (let c = 0; c < 500; c++) {
      const current = naiveMerge([], Array.from({ length: Math.floor(r() * 6) }, tile));
      const oldRun = r() < 0.5 ? new Uint8Array(0) : bytes(200);
      const packed =
        current.length === 0 && oldRun.length === 0 && r() < 0.5
          ? undefined
          : Buffer.concat([packTiles(current), oldRun]);
      const writes: PackedWrite[] = Array.from({ length: Math.floor(r() * 4) }, () =>
        r() < 0.3 ? { ...tile(), bytes: null } : tile(),
      );
      const run = r() < 0.3 ? undefined : r() < 0.3 ? null : bytes(100);
      const runAfter = run === null ? [] : [...oldRun, ...(run ?? [])];
      const want = [
        ...naiveMerge(current, writes),
        ...(runAfter.length > 0
          ? [{ level: EVENT_RUN_LEVEL, start: 0, bytes: Uint8Array.from(runAfter) }]
          : []),
      ];
      const got = mergePacked(packed, [...writes], run, into);
      if (want.length === 0) expect(got).toBeNull();
      else {
        expect(shown(unpackTiles(Buffer.from(got!)))).toEqual(shown(want));
        expect(into.tilesEnd).toBe(tilesEnd(got!));
        expect(got!.length - into.tilesEnd).toBe(runAfter.length);
      }
    }
  });

  it('rejects a corrupt packed value naming the fix', () => {
    const packed = packTiles([{ level: 1, start: 0, bytes: new Uint8Array([1, 2]) }]);
    expect(() => mergePacked(packed.subarray(0, packed.length - 1), [])).toThrow(/corrupt.*re-upload/);
    const run = new Uint8Array([4]);
    expect(() => mergePacked(packed.subarray(0, packed.length - 1), [], run)).toThrow(/corrupt.*re-upload/);
    expect(() => tilesEnd(packed.subarray(0, 3))).toThrow(/corrupt.*re-upload/);
  });

  it('fromPacked reads values at an offset inside views of one shared buffer, each within its own range', () => {
    // As in a Redis reply: several entity values (each after a 4-byte header) are views into one chunk.
    const r = rng(5);
    const entities = Array.from({ length: 6 }, (_, e) => {
      const tiles: StoredTile[] = Array.from({ length: e % 4 }, (_, i) => ({
        level: [1, 1000, 60_000][i % 3]!,
        start: i * 60_000,
        bytes: Uint8Array.from({ length: Math.floor(r() * 9) }, () => Math.floor(r() * 256)),
      }));
      const run = e % 2 === 1 ? Uint8Array.of(9, e) : new Uint8Array(0);
      return { tiles, run, value: Buffer.concat([Buffer.alloc(4, 0xee), packTiles(tiles), run]) };
    });
    const chunk = Buffer.concat([
      Buffer.alloc(3, 0xff),
      ...entities.map((e) => e.value),
      Buffer.alloc(5, 0xff),
    ]);
    const columns = new TileColumns();
    let at = 3;
    for (const [pass, e] of [...entities, ...entities].entries()) {
      const view = chunk.subarray(at, at + e.value.length);
      at = pass === entities.length - 1 ? 3 : at + e.value.length;
      columns.fromPacked(view, 4);
      const expected = [
        ...e.tiles,
        ...(e.run.length > 0 ? [{ level: EVENT_RUN_LEVEL, start: 0, bytes: e.run }] : []),
      ];
      expect(columns.length).toBe(expected.length);
      expected.forEach((t, i) => {
        expect([columns.level[i], columns.start[i], [...columns.bytes(i)]]).toEqual([
          t.level,
          t.start,
          [...t.bytes],
        ]);
        expect([...columns.source(i).subarray(columns.from[i], columns.to[i])]).toEqual([...t.bytes]);
      });
    }
    // Bounded by the view, not the buffer behind it: a value cut short is corrupt even with bytes after it.
    const first = entities.find((e) => e.tiles.length > 0)!;
    const start = 3 + entities.slice(0, entities.indexOf(first)).reduce((n, e) => n + e.value.length, 0);
    expect(() =>
      columns.fromPacked(chunk.subarray(start, start + first.value.length - first.run.length - 1), 4),
    ).toThrow(/corrupt.*re-upload/);
    expect(() => columns.fromPacked(chunk.subarray(start, start + 7), 4)).toThrow(/corrupt.*re-upload/);
    // Released, the columns hold nothing of the chunk (no reference keeps it alive), and fill again.
    columns.fromPacked(chunk.subarray(start, start + first.value.length), 4);
    expect(columns.source(0).buffer).toBe(chunk.buffer);
    columns.release();
    expect(columns.length).toBe(0);
    expect(columns.source(0).buffer).not.toBe(chunk.buffer);
    expect(
      Object.values(columns).some((v) => v === chunk.buffer || (v as Uint8Array)?.buffer === chunk.buffer),
    ).toBe(false);
    columns.fromPacked(chunk.subarray(start, start + first.value.length), 4);
    expect(columns.length).toBe(first.tiles.length + (first.run.length > 0 ? 1 : 0));
    expect([...columns.bytes(0)]).toEqual([...first.tiles[0]!.bytes]);
  });
});
