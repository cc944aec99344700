import { describe, expect, it } from 'vitest';
import type { JoinDef } from '../../src/define/types.ts';
import { col, eventSource, groupBy, join, count } from '../../src/index.ts';
import { toLeftRows } from '../../src/serve/request-rows.ts';

const src = eventSource({
  name: 'wide',
  path: 'data/wide.jsonl',
  timeColumn: 'ts',
  schema: {
    k: col.string(),
    n: col.int(),
    x: col.float(),
    b: col.bool(),
    t: col.timestamp(),
    ts: col.timestamp(),
  },
});
const g = groupBy({ name: 'g', source: src, keys: ['k'], aggregations: [count({ windows: ['1h'] })] });
const j = join({ name: 'm', left: src, parts: [{ groupBy: g, keys: { k: 'k' } }] }) as JoinDef;

const fail = (rows: Record<string, unknown>[], fromQuery = false) => {
  try {
    toLeftRows([j], rows, 5, fromQuery);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('toLeftRows', () => {
  it('coerces values to their column types and sets the time column', () => {
    expect(toLeftRows([j], [{ k: 7, n: 2, x: 1.5, b: true, t: '1970-01-01T00:00:01Z' }], 5, false)).toEqual([
      { k: '7', n: 2, x: 1.5, b: true, t: 1000, ts: 5 },
    ]);
    expect(toLeftRows([j], [{ k: 'a', n: '3', x: '2.5', b: 'false' }], 5, true)).toEqual([
      { k: 'a', n: 3, x: 2.5, b: false, ts: 5 },
    ]);
  });

  it('names the column, the row (in a batch), the type wanted and the value sent', () => {
    expect(fail([{ k: {} }])).toBe("column 'k' must be a string, got {}");
    expect(fail([{ k: 'a' }, { k: 'a', n: 1.5 }])).toBe("column 'n' in row 1 must be an integer, got 1.5");
    expect(fail([{ k: 'a', n: '2' }])).toBe('column \'n\' must be an integer, got "2"');
    expect(fail([{ k: 'a', x: 'NaN' }], true)).toBe('column \'x\' must be a number, got "NaN"');
    expect(fail([{ k: 'a', b: 'yes' }], true)).toBe('column \'b\' must be true or false, got "yes"');
    expect(fail([{ k: 'a', t: 'soon' }])).toBe(
      'column \'t\' must be epoch milliseconds or ISO-8601 text, got "soon"',
    );
    expect(fail([{ k: 'a' }, { n: 1 }])).toBe(
      "missing key column 'k' in row 1: join 'm' needs 'k'; send it (null if unknown)",
    );
    expect(fail([{ k: 'a', z: 1 }])).toMatch(
      /^unknown column 'z': the left source of join 'm' has 'k', 'n', /,
    );
  });
});
