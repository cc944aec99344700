import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRepo,
  col,
  count,
  eventSource,
  groupBy,
  join,
  repoIssues,
  resolveSourceFiles,
  TesseraDefinitionError,
  validateRepo,
} from '../../src/index.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(joinPath(tmpdir(), 'tessera-validate-'));
  for (const file of [
    'charges/2024/a.parquet',
    'charges/2024/b.parquet',
    'charges/2025/c.parquet',
    'charges/notes.txt',
    'charges/.hidden.parquet',
    'refunds.csv',
  ]) {
    await mkdir(joinPath(dir, file, '..'), { recursive: true });
    await writeFile(joinPath(dir, file), '');
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const source = (name: string, path: string, baseDir?: string) =>
  eventSource({
    name,
    path,
    timeColumn: 'ts',
    schema: { card_id: col.string(), ts: col.timestamp() },
    ...(baseDir ? { baseDir } : {}),
  });

describe('resolveSourceFiles', () => {
  it('expands *, **, ?, [..] and {a,b} into sorted absolute paths, skipping hidden files', async () => {
    const rel = async (path: string) =>
      (await resolveSourceFiles(source('s', path), dir)).map((f) => f.slice(dir.length + 1));
    expect(await rel('charges/*/*.parquet')).toEqual([
      'charges/2024/a.parquet',
      'charges/2024/b.parquet',
      'charges/2025/c.parquet',
    ]);
    expect(await rel('charges/**/*.parquet')).toEqual([
      'charges/2024/a.parquet',
      'charges/2024/b.parquet',
      'charges/2025/c.parquet',
    ]);
    expect(await rel('charges/202?/[ab].parquet')).toEqual([
      'charges/2024/a.parquet',
      'charges/2024/b.parquet',
    ]);
    expect(await rel('{charges/2025/c.parquet,refunds.csv}')).toEqual([]); // braces do not span '/'
    expect(await rel('charges/{2024,2025}/c.parquet')).toEqual(['charges/2025/c.parquet']);
    expect(await rel('refunds.csv')).toEqual(['refunds.csv']);
    expect(await rel('missing/*.csv')).toEqual([]);
    expect(await rel('charges')).toEqual([]); // a directory is not a file
  });

  it('resolves relative paths against the source baseDir first, then the given dir', async () => {
    expect(await resolveSourceFiles(source('s', 'refunds.csv', dir), '/nowhere')).toEqual([
      joinPath(dir, 'refunds.csv'),
    ]);
    expect(await resolveSourceFiles(source('s', joinPath(dir, 'refunds.csv')), '/nowhere')).toHaveLength(1);
  });
});

describe('validateRepo', () => {
  it('closes a repo over referenced definitions, deduplicated by identity', () => {
    const s = source('charges', 'x.csv');
    const g = groupBy({
      name: 'g',
      source: s,
      keys: ['card_id'],
      aggregations: [count({ windows: ['1h'] })],
    });
    const j = join({ name: 'j', left: s, parts: [{ groupBy: g, keys: { card_id: 'card_id' } }] });
    const repo = closeRepo({ sources: [], groupBys: [g], joins: [j, j] });
    expect(repo.sources).toEqual([s]);
    expect(repo.groupBys).toEqual([g]);
    expect(repo.joins).toEqual([j]);
  });

  it('reports duplicate names per kind and source paths that match no file', async () => {
    const a = source('charges', 'charges/*/*.parquet');
    const b = source('charges', 'charges/*.json');
    const g1 = groupBy({
      name: 'g',
      source: a,
      keys: ['card_id'],
      aggregations: [count({ windows: ['1h'] })],
    });
    const g2 = groupBy({
      name: 'g',
      source: b,
      keys: ['card_id'],
      aggregations: [count({ windows: ['1d'] })],
    });
    const repo = { sources: [a], groupBys: [g1, g2], joins: [] };
    expect((await repoIssues(repo, { dir })).map((i) => i.code)).toEqual([
      'duplicate_name',
      'duplicate_name',
    ]);
    const error = await validateRepo(repo, { dir, checkFiles: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraDefinitionError);
    expect((error as Error).message.replaceAll(dir, '<dir>')).toMatchInlineSnapshot(`
      "Invalid feature definitions (3 issues):
        - eventSource 'charges' › name: two different eventSource definitions are named 'charges'
          fix: rename one of them; eventSource names must be unique in a repo
        - groupBy 'g' › name: two different groupBy definitions are named 'g'
          fix: rename one of them; groupBy names must be unique in a repo
        - eventSource 'charges' › path: path 'charges/*.json' matches no file (looked for <dir>/charges/*.json)
          fix: create the data (e.g. run the generator) or fix the path"
    `);
  });

  it('passes a valid repo with existing files', async () => {
    const a = source('charges', 'charges/**/*.parquet');
    await expect(
      validateRepo({ sources: [a], groupBys: [], joins: [] }, { dir, checkFiles: true }),
    ).resolves.toBeUndefined();
  });
});
