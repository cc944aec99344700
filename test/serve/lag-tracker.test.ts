import { describe, expect, it } from 'vitest';
import { LagTracker } from '../../src/serve/lag-tracker.ts';

describe('LagTracker', () => {
  it('is behind only when events observed longer ago than the threshold are unapplied', () => {
    const lag = new LagTracker(1000);
    lag.observe(0, 0, 10);
    expect(lag.lag).toBe(10);
    expect(lag.isBehind(500, 0)).toBe(false);
    expect(lag.isBehind(1500, 9)).toBe(true);
    expect(lag.isBehind(1500, 10)).toBe(false);
  });

  it('does not call a busy stream that keeps up stale', () => {
    const lag = new LagTracker(1000);
    let applied = 0;
    for (let t = 0; t < 10_000; t += 100) {
      const end = t / 10 + 5; // always 5 events in flight
      lag.observe(t, applied, end);
      applied = end - 5;
      expect(lag.isBehind(t, applied)).toBe(false);
    }
    expect(lag.lag).toBeGreaterThan(0);
  });

  it('reports a stuck worker once the threshold passes', () => {
    const lag = new LagTracker(1000);
    for (let t = 0; t <= 3000; t += 100) lag.observe(t, 7, 7 + t);
    expect(lag.isBehind(3000, 7)).toBe(true);
    expect(lag.isBehind(3000, 3007)).toBe(false);
  });
});
