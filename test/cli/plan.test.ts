import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { register } from '../../src/cli/commands/plan.ts';
import { loadRepo, RepoLoadError } from '../../src/cli/load-repo.ts';
import { buildPlan, canonicalJson, TesseraDefinitionError } from '../../src/index.ts';

const root = join(import.meta.dirname, '..', '..');
const fixture = join(import.meta.dirname, 'plan-fixture');
const broken = join(import.meta.dirname, 'plan-fixture-broken');
const run = promisify(execFile);

/** Runs the real CLI binary; resolves with exit code and output instead of throwing. */
async function tessera(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'bin', 'tessera.js'), ...args], {
      cwd: root,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Runs `tessera plan` in-process (fast; the spawned binary is covered by the tests that use `tessera`). */
async function planInProcess(...args: string[]): Promise<string> {
  const program = new Command('tessera').exitOverride();
  register(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['plan', ...args], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return out;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'tessera-plan-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('loadRepo', () => {
  it('collects exported definitions across nested files, skipping tests and data folders', async () => {
    const repo = await loadRepo(fixture);
    expect(repo.dir).toBe(fixture);
    expect(repo.files.map((f) => f.slice(fixture.length + 1))).toEqual([
      'features.ts',
      'models/fraud.ts',
      'sources.ts',
    ]);
    expect(repo.sources.map((s) => s.name)).toEqual(['charges']);
    expect(repo.groupBys.map((g) => g.name)).toEqual(['card_stats', 'merchant_stats']);
    expect(repo.joins.map((j) => j.name)).toEqual(['fraud_model']);
  });

  it('rethrows definition errors from imported files as one TesseraDefinitionError', async () => {
    const error = await loadRepo(broken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraDefinitionError);
    expect((error as TesseraDefinitionError).issues.map((i) => i.code)).toEqual([
      'bad_window',
      'op_type_mismatch',
      'missing_file', // the repo-level checks run in the same pass (the fixture has no data)
    ]);
  });

  it('reports a broken file once when other files import it, also from CommonJS repo files', async () => {
    // Outside `tmp`, which a later test needs free of definition files.
    const dir = await mkdtemp(join(tmpdir(), 'tessera-imported-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const defs = await readFile(join(broken, 'defs.ts'), 'utf8');
    const src = join(import.meta.dirname, '../../src/index.ts');
    // No package.json with "type": "module" above the temp dir: the files load through require, which
    // evaluates the broken file again for each importer (a new error each time, of its own class copy).
    await writeFile(join(dir, 'defs.ts'), defs.replace("'../../../src/index.ts'", JSON.stringify(src)));
    await writeFile(
      join(dir, 'other.ts'),
      "import { cardStats } from './defs.ts';\nexport const x = cardStats;\n",
    );
    const error = await loadRepo(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraDefinitionError);
    expect((error as TesseraDefinitionError).issues.map((i) => i.code)).toEqual([
      'bad_window',
      'op_type_mismatch',
      'missing_file', // the repo-level checks run in the same pass (the fixture has no data)
    ]);
  });

  it('names the folder when it does not exist or holds no definitions', async () => {
    await expect(loadRepo(join(tmp, 'nope'))).rejects.toThrow(RepoLoadError);
    await expect(loadRepo(tmp)).rejects.toThrow(/has no \.ts or \.js definition files/);
  });

  it('names the file when an import fails for another reason', async () => {
    const dir = await mkdtemp(join(tmp, 'throws-'));
    await writeFile(join(dir, 'defs.mjs'), "throw new Error('boom');\n");
    await expect(loadRepo(dir)).rejects.toThrow('could not load a feature repo file:\n  - defs.mjs: boom');
  });
});

describe('tessera plan', () => {
  it('prints the summary', async () => {
    const stdout = await planInProcess('--repo', fixture);
    expect(stdout.replace(/#[0-9a-f]{10}/g, '#<hash>')).toMatchInlineSnapshot(`
      "Plan: 1 source, 2 group-bys, 1 join

      Sources
        charges  data/charges/*.csv  time ts  5 columns

      Group-bys
        card_stats      #<hash>  source charges  keys card_id      3 features  owner risk
        merchant_stats  #<hash>  source charges  keys merchant_id  1 feature

      Joins
        fraud_model  left charges  parts card_stats, m:merchant_stats  5 features (1 derived)
      "
    `);
  });

  it('prints and writes the canonical JSON plan', async () => {
    const out = join(tmp, 'plan.json');
    const { code, stdout } = await tessera('plan', '--repo', fixture, '--json', '--out', out);
    expect(code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(stdout);
    const plan = JSON.parse(stdout);
    expect(plan.groupBys.map((g: { name: string }) => g.name)).toEqual(['card_stats', 'merchant_stats']);
    // The CLI (tsx) and this process (vitest) print function code differently; canonical code makes plans equal.
    expect(stdout).toBe(canonicalJson(buildPlan(await loadRepo(fixture)), 2) + '\n');
  });

  it('prints what changed since a previous plan', async () => {
    const previousFile = join(tmp, 'previous.json');
    const current = JSON.parse(await planInProcess('--repo', fixture, '--json'));
    current.groupBys[0].hash = 'f'.repeat(64);
    current.groupBys[1].owner = 'someone-else';
    current.joins = [];
    await writeFile(previousFile, JSON.stringify(current));
    const stdout = await planInProcess('--repo', fixture, '--diff', previousFile);
    expect(
      stdout
        .slice(stdout.indexOf('Changes since'))
        .replace(previousFile, '<file>')
        .replace(/#[0-9a-f]{10}/g, '#<hash>'),
    ).toMatchInlineSnapshot(`
      "Changes since <file>
      ~ groupBy card_stats  #<hash> → #<hash>  (recompute)
      ~ groupBy merchant_stats  #<hash>  (names, owner or docs only)
      + join fraud_model
      "
    `);
    await expect(
      planInProcess('--repo', fixture, '--diff', join(fixture, 'data', 'charges', 'part-0.csv')),
    ).rejects.toThrow(/cannot read plan .*part-0\.csv.*pass a file written by 'tessera plan --out'/);
  });

  it('exits 1 with the rendered issues and no stack trace', async () => {
    const { code, stderr, stdout } = await tessera('plan', '--repo', broken);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(
      "groupBy 'card_stats' › aggregations[0].windows[0]: window '1hr' is not a valid duration",
    );
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('checks that source paths match files unless --no-check-files', async () => {
    const dir = await mkdtemp(join(tmp, 'nodata-'));
    const index = join(root, 'src', 'index.ts');
    await writeFile(
      join(dir, 'defs.ts'),
      `import { col, eventSource } from ${JSON.stringify(index)};\n` +
        "export const s = eventSource({ name: 's', path: 'data/*.parquet', timeColumn: 'ts', schema: { ts: col.timestamp() } });\n",
    );
    const missing = await tessera('plan', '--repo', dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("eventSource 's' › path: path 'data/*.parquet' matches no file");
    const skipped = await planInProcess('--repo', dir, '--no-check-files');
    expect(skipped).toContain('Plan: 1 source, 0 group-bys, 0 joins');
  });

  it("checks the schema's columns against a source's first file, and that the file reads in its format", async () => {
    const dir = await mkdtemp(join(tmp, 'columns-'));
    const index = join(root, 'src', 'index.ts');
    await writeFile(join(dir, 'e.csv'), 'user,amount,ts\nu1,5,2024-01-01T00:00:00Z\n');
    const source = (name: string, schema: string, format = '') =>
      `export const ${name} = eventSource({ name: '${name}', path: 'e.csv', ${format}timeColumn: 'ts', schema: { ${schema}, ts: col.timestamp() } });\n`;
    await writeFile(
      join(dir, 'defs.ts'),
      `import { col, eventSource } from ${JSON.stringify(index)};\n` +
        source('ok', 'user: col.string(), amount: col.float()') +
        source('typo', 'usr: col.string(), amt: col.float().nullable()') +
        source('pq', 'user: col.string()', "format: 'parquet', "),
    );
    const error = await loadRepo(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraDefinitionError);
    const issues = (error as TesseraDefinitionError).issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues.sort()).toEqual([
      expect.stringMatching(/^path: cannot read .*e\.csv: .*parquet/),
      expect.stringMatching(
        /^schema: .*e\.csv has no column 'usr' \(the file has 'user'\), 'amt'; its columns: 'user', 'amount', 'ts'$/,
      ),
    ]);
    expect((await loadRepo(dir, { checkFiles: false })).sources).toHaveLength(3);
  });
});
