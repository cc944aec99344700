/**
 * Acceptance: definition mistakes issue 2 lists, each in its own file of one repo, reported together by
 * `tessera plan` before any compute, each naming the definition, the field and a fix.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PKG, runCli, tempDir, writeJsonl, type CliResult, removeTempDirs } from './support.ts';

const IMPORT = `import { col, count, sum, eventSource, groupBy, join } from '${PKG}';\n`;
const src = (name: string, path = 'data/ev.jsonl') =>
  `const ${name} = eventSource({ name: '${name}', path: '${path}', timeColumn: 'ts',
  schema: { user: col.string(), amount: col.float(), note: col.string(), ts: col.timestamp() } });\n`;

/** file → [code, what the message must mention] */
const CASES: Record<string, [string, RegExp[]]> = {
  'unknown-column.ts': [
    src('s1') +
      `export const g1 = groupBy({ name: 'g_unknown', source: s1, keys: ['user'], aggregations: [sum('amuont' as 'amount', { windows: ['1h'] })] });`,
    [/g_unknown/, /amuont/],
  ],
  'op-type.ts': [
    src('s2') +
      `export const g2 = groupBy({ name: 'g_optype', source: s2, keys: ['user'], aggregations: [sum('note' as 'amount', { windows: ['1h'] })] });`,
    [/g_optype/, /sum/, /note/],
  ],
  'bad-window.ts': [
    src('s3') +
      `export const g3 = groupBy({ name: 'g_window', source: s3, keys: ['user'], aggregations: [count({ windows: ['1 hour' as '1h'] })] });`,
    [/g_window/, /1 hour/],
  ],
  'bad-hop.ts': [
    src('s4') +
      `export const g4 = groupBy({ name: 'g_hop', source: s4, keys: ['user'], aggregations: [count({ windows: [{ size: '1h', hop: '7m' }] })] });`,
    [/g_hop/, /7m/, /divide/i],
  ],
  'duplicate-window.ts': [
    src('s5') +
      `export const g5 = groupBy({ name: 'g_dupwin', source: s5, keys: ['user'], aggregations: [count({ windows: ['1d', '24h'] })] });`,
    [/g_dupwin/, /24h/, /same|duplicate/i],
  ],
  'key-mapping.ts': [
    src('s6') +
      `const g6 = groupBy({ name: 'g_keys', source: s6, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
export const j6 = join({ name: 'j_keys', left: s6, parts: [{ groupBy: g6, keys: { user: 'customer' as 'user' } }] });`,
    [/j_keys/, /customer/],
  ],
};

/** Problems only visible once every file has loaded (checked by a second run on a loadable repo). */
const REPO_CASES: Record<string, [string, RegExp[]]> = {
  'dup-a.ts': [
    src('s8') +
      `export const g8 = groupBy({ name: 'g_same', source: s8, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });`,
    [/g_same/, /named|duplicate|unique/i],
  ],
  'dup-b.ts': [
    src('s9') +
      `export const g9 = groupBy({ name: 'g_same', source: s9, keys: ['user'], aggregations: [count({ windows: ['2h'] })] });`,
    [/g_same/],
  ],
  'no-files.ts': [
    src('s7', 'data/missing-*.parquet') +
      `export const g7 = groupBy({ name: 'g_nofile', source: s7, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });`,
    [/s7/, /missing-\*\.parquet/, /no file|matches no|not found/i],
  ],
};

let plan: CliResult;
let repoPlan: CliResult;

beforeAll(async () => {
  const make = (cases: typeof CASES) => {
    const repo = join(tempDir(), 'repo');
    mkdirSync(join(repo, 'data'), { recursive: true });
    writeJsonl(join(repo, 'data/ev.jsonl'), [{ user: 'a', amount: 1, note: 'x', ts: 0 }]);
    for (const [file, [code]] of Object.entries(cases)) writeFileSync(join(repo, file), IMPORT + code + '\n');
    return repo;
  };
  [plan, repoPlan] = await Promise.all([
    runCli(['plan', '--repo', make(CASES)]),
    runCli(['plan', '--repo', make(REPO_CASES)]),
  ]);
}, 60_000);

function reported(run: () => CliResult, cases: typeof CASES) {
  it('fails', () => expect(run().code).not.toBe(0));
  for (const [file, [, patterns]] of Object.entries(cases)) {
    it(`reports ${file.replace('.ts', '')} naming the definition and the field, with a fix`, () => {
      const plan = run();
      const lines = plan.stderr.split('\n');
      const at = lines.findIndex((l) => patterns[0]!.test(l));
      expect(at, plan.stderr).toBeGreaterThanOrEqual(0);
      const block = lines.slice(at, at + 3).join('\n');
      for (const p of patterns) expect(block, plan.stderr).toMatch(p);
      expect(block, plan.stderr).toMatch(/fix/i);
    });
  }
}

afterAll(() => removeTempDirs());

describe('definition validation through `tessera plan` (each file fails to build)', () => {
  reported(() => plan, CASES);
});

describe('definition validation through `tessera plan` (whole-repo checks)', () => {
  reported(() => repoPlan, REPO_CASES);
});
