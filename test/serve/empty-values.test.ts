import { describe, expect, it } from 'vitest';
import { emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import { HOUR, makeGroupBy, MIN, win } from '../aggregate/support/fixture.ts';

describe('empty-window values of missing keys', () => {
  it('are frozen, so one response cannot change what the next one gets', () => {
    const groupBy = makeGroupBy([win('1h', HOUR, 5 * MIN)]);
    const first = emptyGroupValues(groupBy);
    const histogram = groupBy.aggregations.findIndex((a) => a.op === 'histogram');
    const value = first.values[histogram]![0] as Record<string, number>;
    expect(value).toEqual({});
    expect(() => {
      value.leaked = 1;
    }).toThrow(TypeError);
    expect(() => (first.values[0] as unknown[]).push(1)).toThrow(TypeError);
    expect(emptyGroupValues(groupBy).values[histogram]![0]).toEqual({});
  });
});
