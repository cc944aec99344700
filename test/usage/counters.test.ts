import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import {
  CounterBuffer,
  bucketUpperMs,
  latencyBucket,
  parseCounterName,
  quantileMs,
} from '../../src/online/usage-counters.ts';
import { startRedis } from '../support/servers.ts';

const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Opens "the same store" again, as a restarted or second process would. */
const backends: [string, (() => () => OnlineStore) | null][] = [
  [
    'lmdb',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'tessera-usage-'));
      dirs.push(dir);
      return () => openStore({ kind: 'lmdb', path: dir });
    },
  ],
  [
    'redis',
    redis
      ? () => {
          const prefix = `u${Math.random().toString(36).slice(2)}:`;
          return () => openStore({ kind: 'redis', url: redis.url, prefix });
        }
      : null,
  ],
];

for (const [name, makeOpener] of backends) {
  describe.skipIf(!makeOpener)(`${name} usage counters`, () => {
    it('add up as increments, read by prefix, survive a reopen, and reject fractional deltas', async () => {
      const open = makeOpener!();
      const a = open();
      await a.addCounters({ 'usage/gb/g1/fetches': 3, 'usage/join/j/rows': 2 });
      await a.addCounters({ 'usage/gb/g1/fetches': 4, 'usage/gb/g2/fetches': 0 });
      await expect(a.addCounters({ 'usage/gb/g1/fetch_us': 1.5 })).rejects.toThrow(
        /usage\/gb\/g1\/fetch_us.*safe integer/,
      );
      await a.close();

      const b = open();
      expect(await b.readCounters('usage/gb/')).toEqual({ 'usage/gb/g1/fetches': 7 });
      expect(await b.readCounters()).toEqual({ 'usage/gb/g1/fetches': 7, 'usage/join/j/rows': 2 });
      // Two writers at once (two serving nodes, or two processes on one LMDB file) never lose an increment.
      const c = open();
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? b : c).addCounters({ 'usage/gb/g1/fetches': 1 })),
      );
      expect((await c.readCounters('usage/gb/g1/'))['usage/gb/g1/fetches']).toBe(47);
      await b.close();
      await c.close();
    });
  });
}

describe('counter helpers', () => {
  it('latency buckets are ordered and the quantile is the upper bound of its bucket', () => {
    let prev = -1;
    for (const ms of [0.001, 0.01, 0.0101, 0.05, 0.3, 1, 7.5, 120, 1e6]) {
      const b = latencyBucket(ms);
      expect(b).toBeGreaterThanOrEqual(prev);
      if (ms > 0.01 && ms < 300_000) {
        expect(bucketUpperMs(b)).toBeGreaterThanOrEqual(ms * (1 - 1e-12));
        expect(bucketUpperMs(b - 1)).toBeLessThan(ms);
      }
      prev = b;
    }
    const h = new Map([
      [latencyBucket(0.2), 98],
      [latencyBucket(5), 2],
    ]);
    expect(quantileMs(h, 0.5)).toBe(bucketUpperMs(latencyBucket(0.2)));
    expect(quantileMs(h, 0.99)).toBe(bucketUpperMs(latencyBucket(5)));
    expect(quantileMs(new Map(), 0.5)).toBeNull();
  });

  it('parses every counter name it writes', () => {
    expect(parseCounterName('usage/gb/abc/fetches')).toEqual({ kind: 'gb', id: 'abc', what: 'fetches' });
    expect(parseCounterName('usage/join/groupby:x/rows')).toEqual({
      kind: 'join',
      join: 'groupby:x',
      what: 'rows',
    });
    expect(parseCounterName('usage/join/m/lookups/abc')).toEqual({ kind: 'lookups', join: 'm', id: 'abc' });
    expect(parseCounterName('usage/join/m/latency/7')).toEqual({ kind: 'latency', join: 'm', bucket: 7 });
    expect(parseCounterName('stream/x/0')).toBeNull();
  });

  it('a buffer sends whole units, carries fractions, and keeps deltas when a flush fails', async () => {
    const got: Record<string, number>[] = [];
    let fail = true;
    const sink = {
      addCounters: async (d: Record<string, number>) => {
        if (fail) throw new Error('down');
        got.push(d);
      },
    };
    const buf = new CounterBuffer();
    buf.add('x', 1.25);
    buf.add('x', 1.5);
    buf.add('y', 0.5);
    await expect(buf.flushTo(sink)).rejects.toThrow('down');
    fail = false;
    await buf.flushTo(sink);
    buf.add('y', 0.5);
    await buf.flushTo(sink);
    expect(got).toEqual([{ x: 2 }, { y: 1 }]);
  });
});
