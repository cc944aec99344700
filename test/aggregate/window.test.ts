import { describe, expect, it } from 'vitest';
import {
  checkHop,
  defaultHop,
  inWindow,
  parseDuration,
  tileLevels,
  windowGroups,
  windowStart,
} from '../../src/aggregate/window.ts';
import { DAY, HOUR, makeGroupBy, MIN, win } from './support/fixture.ts';

describe('window math', () => {
  it('parses durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(10 * MIN);
    expect(parseDuration('1h')).toBe(HOUR);
    expect(parseDuration('7d')).toBe(7 * DAY);
    expect(parseDuration('2w')).toBe(14 * DAY);
    expect(() => parseDuration('1.5h')).toThrowErrorMatchingInlineSnapshot(
      `[Error: invalid duration '1.5h': write a whole number followed by one unit of ms, s, m, h, d or w, e.g. '30s', '10m', '1h', '7d']`,
    );
    expect(() => parseDuration('lifetime')).toThrow(/'lifetime' is a window, not a duration/);
    expect(() => parseDuration('0s')).toThrow(/positive/);
    expect(() => parseDuration('10 minutes')).toThrow(/invalid duration/);
  });

  it('picks the DESIGN §1 default hops', () => {
    const cases: [string, string][] = [
      ['1h', '5m'],
      ['1d', '1h'],
      ['7d', '1h'],
      ['30d', '1d'],
      ['10m', '1s'],
      ['12d', '1d'],
      ['11d', '1h'],
      ['5s', '1s'],
    ];
    for (const [size, hop] of cases) expect(defaultHop(parseDuration(size)), size).toBe(parseDuration(hop));
  });

  it('checks that hops divide windows', () => {
    expect(checkHop(HOUR, 5 * MIN)).toBeNull();
    expect(checkHop(HOUR, 7 * MIN)).toMatch(/does not divide/);
    expect(checkHop(HOUR, 2 * HOUR)).toMatch(/does not divide/);
    expect(checkHop(HOUR, 0)).toMatch(/positive/);
  });

  it('computes the sawtooth start with floor semantics, also before 1970', () => {
    expect(windowStart(HOUR + 7 * MIN + 3, HOUR, 5 * MIN)).toBe(5 * MIN);
    expect(windowStart(-1, HOUR, 5 * MIN)).toBe(-5 * MIN - HOUR);
    expect(windowStart(-5 * MIN, HOUR, 5 * MIN)).toBe(-5 * MIN - HOUR);
    expect(windowStart(123, null, DAY)).toBe(-Infinity);
    // Equals DESIGN's floor((t - W) / h) * h for random t.
    for (let t = -1e7; t < 1e7; t += 9973)
      expect(windowStart(t, HOUR, 5 * MIN)).toBe(Math.floor((t - HOUR) / (5 * MIN)) * 5 * MIN);
    expect(inWindow(10, 10, HOUR, MIN)).toBe(false);
    expect(inWindow(9, 10, HOUR, MIN)).toBe(true);
  });

  it('lists tile levels: hops, finer standard levels, coarser levels for long windows, 1 ms', () => {
    expect(tileLevels([win('1h', HOUR, 5 * MIN), win('1d', DAY, HOUR)])).toEqual([
      HOUR,
      5 * MIN,
      MIN,
      1000,
      1,
    ]);
    expect(tileLevels([win('10m', 10 * MIN, 1000)])).toEqual([MIN, 1000, 1]);
    expect(tileLevels([win('7d', 7 * DAY, HOUR)])).toEqual([DAY, HOUR, 5 * MIN, MIN, 1000, 1]);
    expect(tileLevels([win('90d', 90 * DAY, DAY)])).toEqual([7 * DAY, DAY, HOUR, 5 * MIN, MIN, 1000, 1]);
    expect(tileLevels([win('28d', 28 * DAY, 7 * DAY)])).toEqual([7 * DAY, DAY, HOUR, 5 * MIN, MIN, 1000, 1]);
    expect(tileLevels([win('lifetime', null, DAY), win('14m', 14 * MIN, 7 * MIN)])).toEqual([
      DAY,
      HOUR,
      7 * MIN,
      5 * MIN,
      MIN,
      1000,
      1,
    ]);
  });

  it('groups aggregations by distinct window', () => {
    const groups = windowGroups(makeGroupBy([win('1h', HOUR, 5 * MIN), win('1d', DAY, HOUR)]));
    expect(groups).toHaveLength(2);
    expect(groups[0].aggregations[0]).toEqual({ aggregationIndex: 0, windowIndex: 0 });
    expect(groups[1].aggregations[1]).toEqual({ aggregationIndex: 1, windowIndex: 1 });
  });
});
