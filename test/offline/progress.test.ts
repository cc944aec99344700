import { describe, expect, it } from 'vitest';
import { createProgress } from '../../src/offline/progress.ts';

function fakeStream() {
  const writes: string[] = [];
  return {
    writes,
    stream: { columns: 100, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream,
  };
}

describe('progress bar', () => {
  it('draws rows done / total, rate and ETA on the stream, and clears the line at the end', () => {
    const { writes, stream } = fakeStream();
    const p = createProgress(1000, true, stream);
    p.phase('card_stats');
    p.add(250);
    p.done();
    expect(writes[0]).toMatch(/^\r\[\.{24}\]   0\.0% 0\/1,000 rows, 0 rows\/s, ETA \? card_stats/);
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('is silent when disabled (stderr not a TTY)', () => {
    const { writes, stream } = fakeStream();
    const p = createProgress(1000, false, stream);
    p.phase('x');
    p.add(10);
    p.done();
    expect(writes).toEqual([]);
  });
});
