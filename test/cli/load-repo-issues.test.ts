/**
 * loadRepo reports every definition problem of every file in one run, each naming its file: builders record
 * their issues while the repo loads instead of throwing at the first broken definition.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo, RepoLoadError } from '../../src/cli/load-repo.ts';
import { definitionBaseDir } from '../../src/define/definition-context.ts';
import { formatPath } from '../../src/define/render-issues.ts';
import {
  buildPlan,
  col,
  count,
  eventSource,
  groupBy,
  join as joinDef,
  sum,
  TesseraDefinitionError,
  validateRepo,
} from '../../src/index.ts';
import type { GroupByDef, JoinDef, SourceDef } from '../../src/define/types.ts';
import { runBackfill, type BackfillOptions } from '../../src/offline/backfill.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import { definitionError } from '../define/errors.ts';

const PKG = JSON.stringify(join(import.meta.dirname, '../../src/index.ts'));
const IMPORT = `import { col, count, eventSource, groupBy, join, sum } from ${PKG};\n`;

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/**
 * A repo folder (`name`) in a fresh temp dir, or in `parent`'s; `esm` adds a package.json so the files load
 * through import().
 */
async function repo(
  files: Record<string, string>,
  esm = false,
  { name = 'repo', parent }: { name?: string; parent?: string } = {},
): Promise<string> {
  const dir = parent ?? (await mkdtemp(join(tmpdir(), 'tessera-repo-issues-')));
  if (!parent) dirs.push(dir);
  await mkdir(join(dir, name));
  if (esm) await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  for (const [file, code] of Object.entries(files)) await writeFile(join(dir, name, file), IMPORT + code);
  return join(dir, name);
}

async function issuesOf(dir: string) {
  const error = await loadRepo(dir, { checkFiles: false }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TesseraDefinitionError);
  return error as TesseraDefinitionError;
}

const brief = (e: TesseraDefinitionError) =>
  e.issues.map((i) => `${i.file} › ${i.definition} › ${formatPath(i.path)}: ${i.code}`);

const BROKEN = {
  'sources.ts': `export const ev = eventSource({ name: 'ev', path: 'data/ev.jsonl', timeColumn: 'ts',
    schema: { user: col.string(), amount: col.float(), ts: col.timestamp() } });\n`,
  // A broken group-by (a bad window, a feature listed twice) and, in the same file, a join over it with mistakes of its own; then a
  // group-by with broken keys and a join mapping them, which must not repeat the group-by's issue.
  'model.ts': `import { ev } from './sources.ts';
export const g = groupBy({ name: 'g', source: ev, keys: ['user'],
  aggregations: [count({ windows: ['1 hour'] }), count({ windows: ['1h'] }), count({ windows: ['1h'] })] });
export const m = join({ name: 'm', left: ev, parts: [{ groupBy: g, keys: { user: 'user', extra: 'user' } }],
  derive: { 'bad-name': { type: col.float(), fn: () => 1 } } });
const g2 = groupBy({ name: 'g2', source: ev, keys: ['usr'], aggregations: [count({ windows: ['1h'] })] });
export const m2 = join({ name: 'm2', left: ev, parts: [{ groupBy: g2, keys: { user: 'user' } }] });\n`,
  // An independent broken source, and a group-by over it whose columns cannot be checked (not an issue).
  'other.ts': `export const bad = eventSource({ name: 'bad', path: 'data/ev.jsonl', timeColumn: 'ts',
    schema: { user: col.string(), amount: 'float', ts: col.timestamp() } });
export const gb = groupBy({ name: 'gb', source: bad, keys: ['user'], aggregations: [sum('amount', { windows: ['1h'] })] });\n`,
};

const EXPECTED = [
  "model.ts › groupBy 'g' › aggregations[0].windows[0]: bad_window",
  "model.ts › groupBy 'g' › aggregations[2]: duplicate_name",
  "model.ts › join 'm' › parts[0].keys.extra: bad_key_mapping",
  "model.ts › join 'm' › derive.bad-name: invalid_name",
  "model.ts › groupBy 'g2' › keys[0]: unknown_column",
  "other.ts › eventSource 'bad' › schema.amount: invalid_value",
];

describe('loadRepo reports the problems of every file at once', () => {
  for (const esm of [false, true]) {
    it(`each with its file, skipping follow-on errors (${esm ? 'ESM' : 'CommonJS'} repo files)`, async () => {
      const dir = await repo(BROKEN, esm);
      const error = await issuesOf(dir);
      expect(brief(error)).toEqual(EXPECTED);
      expect(error.message).toContain(
        "  - model.ts › groupBy 'g' › aggregations[0].windows[0]: window '1 hour' is not a valid duration",
      );
      // Loaded modules are cached and do not run again: a second load reports the same.
      expect(brief(await issuesOf(dir))).toEqual(EXPECTED);
    });
  }

  it('names both files of a duplicate name', async () => {
    const src = (name: string) =>
      `const ${name} = eventSource({ name: '${name}', path: 'data/ev.jsonl', timeColumn: 'ts', schema: { user: col.string(), ts: col.timestamp() } });\n`;
    const same = (s: string) =>
      `export const g = groupBy({ name: 'same', source: ${s}, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });\n`;
    const dir = await repo({ 'dup-a.ts': src('sa') + same('sa'), 'dup-b.ts': src('sb') + same('sb') });
    const error = await issuesOf(dir);
    expect(error.issues).toMatchObject([
      {
        code: 'duplicate_name',
        file: 'dup-b.ts',
        message: "two different groupBy definitions are named 'same' (in dup-a.ts and dup-b.ts)",
      },
    ]);
  });

  it('keeps reporting other import errors as RepoLoadError, with the recorded issues', async () => {
    const dir = await repo({ 'a.ts': BROKEN['other.ts'], 'b.ts': "throw new Error('boom');\n" });
    const error = await loadRepo(dir, { checkFiles: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepoLoadError);
    expect((error as Error).message).toMatch(/could not load a feature repo file:\n {2}- b\.ts: boom\n/);
    expect((error as Error).message).toContain("a.ts › eventSource 'bad' › schema.amount");
  });

  it('leaves builders called directly (outside loadRepo) throwing', async () => {
    await issuesOf(await repo(BROKEN));
    const ev = eventSource({
      name: 'ev',
      path: 'x.jsonl',
      timeColumn: 'ts',
      schema: { user: col.string(), ts: col.timestamp() },
    });
    const spec = { name: 'src', path: 'x.jsonl', timeColumn: 'when', schema: { ts: col.timestamp() } };
    expect(() => eventSource(spec as never)).toThrow(TesseraDefinitionError);
    const g = () =>
      groupBy({
        name: 'g',
        source: ev,
        keys: ['user'],
        aggregations: [count({ windows: ['1 hour' as '1h'] })],
      });
    expect(definitionError(g).issues.map((i) => i.code)).toEqual(['bad_window']);
    const gOk = groupBy({
      name: 'g',
      source: ev,
      keys: ['user'],
      aggregations: [count({ windows: ['1h'] })],
    });
    const j = () =>
      joinDef({ name: 'j', left: ev, parts: [{ groupBy: gOk, keys: { user: 'nope' as 'user' } }] });
    expect(definitionError(j).issues.map((i) => i.code)).toEqual(['unknown_column']);
  });

  it('reports a broken definition an earlier failed load left in the module cache, and buildPlan refuses it', async () => {
    const a = await repo({ 's.ts': BROKEN['other.ts'] }, true, { name: 'A' });
    const parent = join(a, '..');
    const b = await repo(
      {
        'g.ts': `import { bad } from '../A/s.ts';
export const g = groupBy({ name: 'g', source: bad, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
export const j = join({ name: 'j', left: bad, parts: [{ groupBy: g, keys: { user: 'user' } }] });\n`,
      },
      true,
      { name: 'B', parent },
    );
    expect(brief(await issuesOf(a))).toEqual(["s.ts › eventSource 'bad' › schema.amount: invalid_value"]);
    // B's group-by uses A's cached broken source: B fails naming it, instead of loading without g.
    expect(brief(await issuesOf(b))).toEqual([
      "../A/s.ts › eventSource 'bad' › schema.amount: invalid_value",
    ]);
    // Imported directly, the cached definitions are still broken: builders and the entries taking
    // definitions refuse them, naming the broken source.
    const { bad } = (await import(join(a, 's.ts'))) as { bad: SourceDef };
    const { g: gb, j } = (await import(join(b, 'g.ts'))) as { g: GroupByDef; j: JoinDef };
    const why = /s\.ts › eventSource 'bad' › schema\.amount: is not a column type/;
    expect(() => buildPlan({ sources: [bad], groupBys: [], joins: [] })).toThrow(why);
    expect(() => buildPlan({ sources: [], groupBys: [], joins: [j] })).toThrow(why);
    await expect(validateRepo({ sources: [], groupBys: [gb], joins: [] })).rejects.toThrow(why);
    await expect(runBackfill({ join: j } as BackfillOptions)).rejects.toThrow(why);
    const repoDefs = { sources: [], groupBys: [gb], joins: [] };
    expect(() => createFeatureService({ repo: repoDefs } as never)).toThrow(why);
    const g = () =>
      groupBy({ name: 'g', source: bad, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
    expect(definitionError(g as () => unknown).issues.map((i) => i.code)).toEqual(['invalid_value']);
  });

  it('forgets the problems of a CommonJS file that failed once it is fixed', async () => {
    const bad = `export const s = eventSource({ name: 's', path: 'd.jsonl', timeColumn: 'tss', schema: { ts: col.timestamp() } });
throw new Error('boom');\n`;
    const dir = await repo({ 'a.ts': bad });
    const error = await loadRepo(dir, { checkFiles: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepoLoadError);
    expect((error as Error).message).toContain("a.ts › eventSource 's' › timeColumn: column 'tss'");
    // Node runs a CommonJS file whose import failed again: its old problems must not outlive it.
    const fixed = `export const s = eventSource({ name: 's', path: 'd.jsonl', timeColumn: 'ts', schema: { ts: col.timestamp() } });\n`;
    await writeFile(join(dir, 'a.ts'), IMPORT + fixed);
    const loaded = await loadRepo(dir, { checkFiles: false });
    expect(loaded.sources.map((s) => s.timeColumn)).toEqual(['ts']);
  });

  it('runs concurrent loads one after the other, each with its own base dir, and leaves no context', async () => {
    const sources = (prefix: string, n: number) =>
      Object.fromEntries(
        Array.from({ length: n }, (_, i) => [
          `s${i}.ts`,
          `export const s${i} = eventSource({ name: '${prefix}${i}', path: 'data/ev.jsonl', timeColumn: 'ts', schema: { user: col.string(), ts: col.timestamp() } });\n`,
        ]),
      );
    const a = await repo(sources('a', 3), true);
    const c = await repo(sources('c', 7), true);
    const [ra, rc] = await Promise.all([
      loadRepo(a, { checkFiles: false }),
      loadRepo(c, { checkFiles: false }),
    ]);
    expect(ra.sources.map((s) => s.baseDir)).toEqual(Array(3).fill(a));
    expect(rc.sources.map((s) => s.baseDir)).toEqual(Array(7).fill(c));
    expect(definitionBaseDir()).toBeUndefined();
    const spec = { name: 'late', path: 'x.jsonl', timeColumn: 'nope', schema: { ts: col.timestamp() } };
    expect(() => eventSource(spec as never)).toThrow(TesseraDefinitionError);
  });

  it("still checks a join's left columns against a group-by whose keys are broken", async () => {
    const dir = await repo({
      'a.ts': `${BROKEN['sources.ts']}const g = groupBy({ name: 'g', source: ev, keys: ['usr'], aggregations: [count({ windows: ['1h'] })] });
export const m = join({ name: 'm', left: ev, parts: [{ groupBy: g, keys: { usr: 'no_such_left_col' } }] });\n`,
    });
    expect(brief(await issuesOf(dir))).toEqual([
      "a.ts › groupBy 'g' › keys[0]: unknown_column",
      "a.ts › join 'm' › parts[0].keys.usr: unknown_column",
    ]);
  });

  it('names the builder when it gets no definition object', async () => {
    const cases: [string, () => unknown][] = [
      ['eventSource', () => eventSource(undefined as never)],
      ['groupBy', () => groupBy(undefined as never)],
      ['join', () => joinDef(null as never)],
    ];
    for (const [builder, call] of cases) {
      const error = definitionError(call);
      expect(error.message).toContain(`${builder}() expects a definition object, got `);
    }
    const dir = await repo({ 'a.ts': 'export const m = join(null);\n' });
    expect((await issuesOf(dir)).issues).toMatchObject([
      { file: 'a.ts', definition: "join '?'", message: 'join() expects a definition object, got null' },
    ]);
  });
});
