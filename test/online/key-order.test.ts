import { describe, expect, it } from 'vitest';
import { keyOrder } from '../../src/online/key-order.ts';
import { rng } from '../support/rng.ts';

/** The naive oracle: a stable comparator sort on the first 16 code units, each clamped to 255 (shorter first). */
function naiveOrder(ids: readonly string[]): number[] {
  const prefix = (s: string) => Array.from(s.slice(0, 16), (ch) => Math.min(ch.charCodeAt(0), 255));
  const keys = ids.map(prefix);
  const cmp = (a: number[], b: number[]) => {
    for (let k = 0; k < Math.min(a.length, b.length); k++) if (a[k] !== b[k]) return a[k]! - b[k]!;
    return a.length - b.length;
  };
  return ids.map((_, i) => i).sort((a, b) => cmp(keys[a]!, keys[b]!) || a - b);
}

describe('keyOrder', () => {
  it('orders random ids like a stable sort of their first 16 characters', () => {
    const next = rng(7);
    const pick = (s: string) => s[Math.floor(next() * s.length)]!;
    for (let trial = 0; trial < 200; trial++) {
      const n = Math.floor(next() * 300);
      // Shared prefixes, duplicates, empty ids, NUL separators, long tails and non-ASCII characters.
      const pool = ['card_000', 'merchant_', '', 'x', 'é', '\u0000'];
      const ids = Array.from({ length: n }, () => {
        let s = pool[Math.floor(next() * pool.length)]!;
        const len = Math.floor(next() * 30);
        for (let k = 0; k < len; k++) s += pick('ab09_\u0000é€z');
        return s;
      });
      expect([...keyOrder(ids)]).toEqual(naiveOrder(ids));
    }
  });

  it('matches the byte order of ASCII keys (what LMDB compares)', () => {
    const ids = ['b\u0000x', 'a', 'ab', 'a\u0000z', 'B', '', 'aa'];
    const sorted = [...keyOrder(ids)].map((i) => ids[i]!);
    const bytes = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(sorted).toEqual(bytes);
  });
});
