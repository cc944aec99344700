import { describe, expect, it } from 'vitest';
import { col, eventSource } from '../../src/index.ts';
import { withDefinitionBaseDir } from '../../src/define/definition-context.ts';
import { definitionError as errorOf } from './errors.ts';
import { charges } from './fixtures.ts';

describe('eventSource', () => {
  it('normalizes to a frozen SourceDef with plain columns and function code', () => {
    expect(charges.kind).toBe('source');
    expect(charges.format).toBe('auto');
    expect(charges.schema.ip).toEqual({ kind: 'column', type: 'string', nullable: true });
    expect(charges.schema.amount).toEqual({ kind: 'column', type: 'float', nullable: false });
    expect(charges.derived.is_large!.type).toBe('bool');
    expect(charges.derived.is_large!.code).toContain('r.amount > 500');
    expect(charges.derived.is_large!.fn({ amount: 600 })).toBe(true);
    expect(charges.filterCode).toContain('r.amount > 0');
    expect(charges.owner).toBe('risk');
    expect(Object.isFrozen(charges)).toBe(true);
    expect(Object.isFrozen(charges.schema)).toBe(true);
    expect(Object.isFrozen(charges.derived.is_large)).toBe(true);
  });

  it('col builders are immutable', () => {
    const base = col.string();
    const nullable = base.nullable();
    expect(base.isNullable).toBe(false);
    expect(nullable.isNullable).toBe(true);
    expect(Object.isFrozen(base)).toBe(true);
  });

  it('takes the base dir from the loader context unless set explicitly', async () => {
    const spec = { name: 's', path: 'x.csv', timeColumn: 'ts', schema: { ts: col.timestamp() } } as const;
    expect(eventSource(spec).baseDir).toBeUndefined();
    const inRepo = await withDefinitionBaseDir('/repo', async () => eventSource(spec));
    expect(inRepo.baseDir).toBe('/repo');
    expect(eventSource({ ...spec, baseDir: '/elsewhere' }).baseDir).toBe('/elsewhere');
  });

  it('reports every problem at once, naming definition, field and fix', () => {
    const error = errorOf(() =>
      eventSource({
        name: 'bad source',
        path: '',
        format: 'xlsx' as 'csv',
        timeColumn: 'time' as 'ts',
        schema: { ts: col.timestamp(), amount: col.float() },
        derive: { amount: { type: col.float(), fn: (r) => r.amount } },
      }),
    );
    expect(error.issues.map((i) => i.code)).toEqual([
      'invalid_name',
      'missing_field',
      'invalid_value',
      'unknown_column',
      'duplicate_name',
    ]);
    expect(error.message).toMatchInlineSnapshot(`
      "Invalid feature definitions (5 issues):
        - eventSource 'bad source' › name: source name 'bad source' is not a valid name
          fix: use letters, digits and underscores, starting with a letter or underscore
        - eventSource 'bad source' › path: path is missing
          fix: set path to a file or glob, e.g. 'data/charges/*.parquet'
        - eventSource 'bad source' › format: format 'xlsx' is not supported
          fix: use one of 'parquet', 'csv', 'jsonl', 'auto'
        - eventSource 'bad source' › timeColumn: column 'time' is not in the schema
          fix: use one of 'ts', 'amount', or add it to the schema as col.timestamp()
        - eventSource 'bad source' › derive.amount: derived column 'amount' has the same name as a schema column
          fix: rename the derived column"
    `);
  });

  it("refuses column names starting with __, which staging adds to a source's own columns", () => {
    const error = errorOf(() =>
      eventSource({
        name: 's',
        path: 'x.csv',
        timeColumn: 'ts',
        schema: { ts: col.timestamp(), __seq: col.int() },
        derive: { __bad: { type: col.bool(), fn: () => true } },
      }),
    );
    expect(error.issues.map((i) => [i.code, i.path.join('.')])).toEqual([
      ['invalid_name', 'schema.__seq'],
      ['invalid_name', 'derive.__bad'],
    ]);
    expect(error.message).toContain("rename the column (e.g. 'seq')");
  });

  it('rejects a time column of the wrong type', () => {
    const error = errorOf(() =>
      eventSource({ name: 's', path: 'x.csv', timeColumn: 'flag', schema: { flag: col.bool() } }),
    );
    expect(error.issues).toEqual([
      expect.objectContaining({ code: 'invalid_value', path: ['timeColumn'], definition: "eventSource 's'" }),
    ]);
  });
});
