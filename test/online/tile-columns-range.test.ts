import { describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { packTiles, TileColumns } from '../../src/online/tile-pack.ts';

/**
 * `TileColumns.fromPacked(value, offset, end)` reads a packed value in place inside a bigger buffer (a
 * Redis reply's socket chunk holds many values): bytes after `end` belong to the next value, not to this
 * one's run, and a value cut short by `end` is corrupt.
 */
describe('TileColumns.fromPacked within a range', () => {
  const tiles = [
    { level: 1000, start: 0, bytes: Uint8Array.of(1, 2) },
    { level: 1000, start: 1000, bytes: Uint8Array.of(3) },
  ];
  const packed = packTiles(tiles);
  const run = Uint8Array.of(9, 9, 9);
  const entries = (c: TileColumns) =>
    Array.from({ length: c.length }, (_, i) => [c.level[i], c.start[i], [...c.bytes(i)]]);

  it('stops at end: the bytes after it are not part of the run', () => {
    const chunk = Buffer.concat([Buffer.from('xx'), packed, run, Buffer.from('next value')]);
    const end = 2 + packed.length + run.length;
    const c = new TileColumns().fromPacked(chunk.subarray(0, chunk.length), 2, end);
    expect(entries(c)).toEqual([
      [1000, 0, [1, 2]],
      [1000, 1000, [3]],
      [EVENT_RUN_LEVEL, 0, [9, 9, 9]],
    ]);
    expect([...c.source(2).subarray(c.from[2], c.to[2])]).toEqual([9, 9, 9]);
    // Without a run: the value ends with its tiles even though bytes follow.
    expect(new TileColumns().fromPacked(chunk, 2, 2 + packed.length).length).toBe(2);
  });

  it('a value cut short by end is corrupt', () => {
    const chunk = Buffer.concat([packed, Buffer.alloc(64)]);
    expect(() => new TileColumns().fromPacked(chunk, 0, packed.length - 1)).toThrow(
      /packed tiles are corrupt/,
    );
  });
});
