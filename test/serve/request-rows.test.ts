import { describe, expect, it } from 'vitest';
import type { JoinDef } from '../../src/define/types.ts';
import { col, eventSource, groupBy, join, count } from '../../src/index.ts';
import { queryRow, toLeftRows } from '../../src/serve/request-rows.ts';

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
      "missing key column 'k' in row 1: join 'm' needs 'k'; send it (null if unknown: JSON null; in a GET query the bare name without '=' (`?card_id=c1&ip`, while `ip=` is the empty string); `tessera fetch --key ip`)",
    );
    expect(fail([{ k: 'a', z: 1 }])).toMatch(
      /^unknown column 'z': the left source of join 'm' has 'k', 'n', /,
    );
  });
});

describe('queryRow', () => {
  // `query` as fastify parses it: a bare `ip` and `ip=` both read as ''.
  it('reads a parameter without = as null, and keeps ip= as the empty string and ip=null as text', () => {
    const url = '/v1/features/m?k=a&ip&email=&device=null&at=5';
    expect(queryRow({ k: 'a', ip: '', email: '', device: 'null', at: '5' }, url)).toEqual({
      row: { k: 'a', ip: null, email: '', device: 'null' },
      at: '5',
    });
  });

  it('decodes bare names as fastify does, and leaves a query without bare names alone', () => {
    expect(queryRow({ 'a b': '', 'x/y': '' }, '/v1/features/m?a+b&x%2Fy').row).toEqual({
      'a b': null,
      'x/y': null,
    });
    expect(queryRow({ k: 'a' }, '/v1/features/m?k=a&')).toEqual({ row: { k: 'a' }, at: undefined });
    expect(queryRow({}, '/v1/features/m')).toEqual({ row: {}, at: undefined });
  });

  it('refuses a repeated parameter', () => {
    expect(() => queryRow({ ip: ['', 'x'] }, '/v1/features/m?ip&ip=x')).toThrow(
      "query parameter 'ip' is repeated; send one value per column",
    );
  });

  it('gives toLeftRows a null key for a bare name, converted values otherwise', () => {
    const { row } = queryRow({ k: '', n: '3' }, '/v1/features/m?k&n=3');
    expect(toLeftRows([j], [row], 5, true)).toEqual([{ k: null, n: 3, ts: 5 }]);
  });
});
