import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeFrame, scanFrames } from '../../src/online/log/frame.ts';
import { tempDir } from './fixtures.ts';

/** `scanFrames` reads frames in 1 MiB blocks: frames across block ends, bigger than a block, a torn tail. */
const dir = tempDir();
afterAll(dir.remove);

function scan(bytes: Buffer): { end: number; counts: number[]; firsts: unknown[] } {
  const path = join(dir.path, 'f');
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  const counts: number[] = [];
  const firsts: unknown[] = [];
  try {
    const end = scanFrames(fd, bytes.length, (h, payload) => {
      counts.push(h.count);
      firsts.push((JSON.parse(payload.toString('utf8')) as unknown[])[0]);
    });
    return { end, counts, firsts };
  } finally {
    closeSync(fd);
  }
}

describe('scanFrames', () => {
  it('finds every whole frame, across block ends and bigger than a block, and stops at a torn one', () => {
    const frames = [
      ...Array.from({ length: 30_000 }, (_, i) => encodeFrame([{ i }])),
      encodeFrame(Array.from({ length: 200_000 }, (_, i) => ({ big: i }))), // ~2.6 MB
      ...Array.from({ length: 10 }, (_, i) => encodeFrame([{ i: -i }, 0])),
    ];
    const whole = Buffer.concat(frames);
    const all = scan(whole);
    expect(all.end).toBe(whole.length);
    expect(all.counts).toHaveLength(frames.length);
    expect(all.firsts[29_999]).toEqual({ i: 29_999 });
    expect(all.firsts[30_000]).toEqual({ big: 0 });
    expect(all.counts[30_001]).toBe(2);
    // Torn: cut inside the big frame, then inside a header.
    const bigEnd = frames.slice(0, 30_001).reduce((n, f) => n + f.length, 0);
    const cut = scan(whole.subarray(0, bigEnd - 5));
    expect(cut.counts).toHaveLength(30_000);
    expect(cut.end).toBe(bigEnd - frames[30_000].length);
    expect(scan(whole.subarray(0, bigEnd + 7)).end).toBe(bigEnd);
    // A corrupted payload ends the scan at the frame before it.
    const bad = Buffer.from(whole);
    bad[bigEnd + 20] ^= 0xff;
    expect(scan(bad).end).toBe(bigEnd);
    expect(scan(Buffer.alloc(0)).end).toBe(0);
  });
});
