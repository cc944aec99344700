import { describe, expect, it } from 'vitest';
import { parseEventTime } from '../../src/aggregate/event-time.ts';

describe('parseEventTime', () => {
  const noon = Date.UTC(2024, 2, 1, 12, 0, 0);

  it('reads ISO-8601 text, treating text without an offset as UTC', () => {
    expect(parseEventTime('2024-03-01T12:00:00Z')).toBe(noon);
    expect(parseEventTime('2024-03-01T12:00:00')).toBe(noon);
    expect(parseEventTime('2024-03-01 12:00:00')).toBe(noon);
    expect(parseEventTime('2024-03-01T12:00')).toBe(noon);
    expect(parseEventTime('2024-03-01T13:00:00+01:00')).toBe(noon);
    expect(parseEventTime('2024-03-01T07:30:00-0430')).toBe(noon);
    expect(parseEventTime('2024-03-01T14:00:00+02')).toBe(noon);
    expect(parseEventTime('2024-03-01')).toBe(Date.UTC(2024, 2, 1));
    expect(parseEventTime('2024-03-01T12:00:00.123Z')).toBe(noon + 123);
    expect(parseEventTime('2024-03-01T12:00:00.5Z')).toBe(noon + 500);
  });

  it('truncates sub-millisecond fractions toward the past', () => {
    expect(parseEventTime('2024-03-01T12:00:00.123999Z')).toBe(noon + 123);
  });

  it('reads integers and digit strings as epoch milliseconds', () => {
    expect(parseEventTime(noon)).toBe(noon);
    expect(parseEventTime(String(noon))).toBe(noon);
    expect(parseEventTime(-5)).toBe(-5);
    expect(parseEventTime(BigInt(noon))).toBe(noon);
    expect(parseEventTime(new Date(noon))).toBe(noon);
  });

  it('reads number text whose value is a whole number as epoch milliseconds (pandas, JSON encoders)', () => {
    expect(parseEventTime('1704067200000.0')).toBe(1704067200000);
    expect(parseEventTime('1.7040672e12')).toBe(1704067200000);
    expect(parseEventTime('1.7040672E+12')).toBe(1704067200000);
    expect(parseEventTime('-5.00')).toBe(-5);
    expect(parseEventTime('1704067200000.')).toBe(1704067200000);
    for (const bad of [
      '1704067200000.5',
      '1.5',
      '1e400',
      '1e20',
      '.5',
      '1.2.3',
      '1e',
      '+5',
      ' 5',
      'e5',
      '0x10',
    ])
      expect(parseEventTime(bad)).toBeNull();
  });

  it('rejects what is not a time', () => {
    for (const bad of [
      null,
      undefined,
      '',
      'abc',
      'yesterday',
      '2024-02-30',
      '2023-02-29',
      '2024-13-01',
      '2024-03-01T25:00:00',
      '2024-03-01T12:60',
      'Mar 1 2024',
      1.5,
      Number.NaN,
      true,
      {},
    ]) {
      expect(parseEventTime(bad)).toBeNull();
    }
    expect(parseEventTime('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
  });
});
