/**
 * Acceptance: a feature repo as a user lays it out, in a folder of its own (no package.json), importing the
 * package by path. One file must work; several files importing each other must work too (qa-findings F1).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PKG, runCli, tempDir, writeJsonl, type CliResult, removeTempDirs } from './support.ts';

const SOURCE = `export const ev = eventSource({ name: 'ev', path: 'data/ev.jsonl', timeColumn: 'ts',
  schema: { user: col.string(), ts: col.timestamp() } });\n`;
const MODEL = `export const g = groupBy({ name: 'g', source: ev, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
export const m = join({ name: 'm', left: ev, parts: [{ groupBy: g, keys: { user: 'user' } }] });\n`;

let single: CliResult;
let multi: CliResult;

beforeAll(async () => {
  const root = tempDir();
  const make = (name: string, files: Record<string, string>) => {
    const repo = join(root, name);
    mkdirSync(join(repo, 'data'), { recursive: true });
    writeJsonl(join(repo, 'data/ev.jsonl'), [
      { user: 'a', ts: 1000 },
      { user: 'a', ts: 2000 },
    ]);
    for (const [f, code] of Object.entries(files)) writeFileSync(join(repo, f), code);
    return repo;
  };
  const imp = `import { col, count, eventSource, groupBy, join } from '${PKG}';\n`;
  const one = make('one', { 'defs.ts': imp + SOURCE + MODEL });
  const two = make('two', {
    'sources.ts': imp + SOURCE,
    'model.ts': imp + `import { ev } from './sources.ts';\n` + MODEL,
  });
  const bf = (repo: string) =>
    runCli([
      'backfill',
      '--repo',
      repo,
      '--join',
      'm',
      '--left',
      join(repo, 'data/ev.jsonl'),
      '--out',
      join(repo, 'o.csv'),
    ]);
  [single, multi] = await Promise.all([bf(one), bf(two)]);
}, 60_000);

afterAll(() => removeTempDirs());

describe('feature repo folders outside the package', () => {
  it('a single definition file loads and backfills', () => {
    expect(single.code, single.stderr).toBe(0);
    expect(single.stdout).toMatch(/2 rows/);
  });

  // qa-findings F1: without a package.json, model.ts's import of sources.ts used to load a second instance.
  it('several files importing each other load (no package.json needed)', () => {
    expect(multi.code, multi.stderr).toBe(0);
  });
});
