/**
 * loadRepo reports every definition problem of every file in one run, each naming its file: builders record
 * their issues while the repo loads instead of throwing at the first broken definition.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo, RepoLoadError } from '../../src/cli/load-repo.ts';
import { formatPath } from '../../src/define/render-issues.ts';
import {
  col,
  count,
  eventSource,
  groupBy,
  join as joinDef,
  sum,
  TesseraDefinitionError,
} from '../../src/index.ts';
import { definitionError } from '../define/errors.ts';

const PKG = JSON.stringify(join(import.meta.dirname, '../../src/index.ts'));
const IMPORT = `import { col, count, eventSource, groupBy, join, sum } from ${PKG};\n`;

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** A repo folder in a fresh temp dir; `esm` adds a package.json so the files load through import(). */
async function repo(files: Record<string, string>, esm = false): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-repo-issues-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'));
  if (esm) await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  for (const [file, code] of Object.entries(files)) await writeFile(join(dir, 'repo', file), IMPORT + code);
  return join(dir, 'repo');
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
});
