import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join as joinPath, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readOutput, tempDir, writeCsv } from './support.ts';

const bin = resolve(import.meta.dirname, '../../bin/tessera.js');
const index = resolve(import.meta.dirname, '../../src/index.ts');

function tessera(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tessera backfill (CLI)', () => {
  const dir = tempDir();
  mkdirSync(joinPath(dir, 'repo'));
  writeCsv(
    joinPath(dir, 'repo', 'events.csv'),
    ['card', 'amount', 'ts'],
    [
      { card: 'a', amount: 1, ts: '2024-01-01T00:10:00Z' },
      { card: 'a', amount: 2, ts: '2024-01-01T00:20:00Z' },
      { card: 'b', amount: 'x', ts: '2024-01-01T00:30:00Z' },
    ],
  );
  writeCsv(
    joinPath(dir, 'left.csv'),
    ['card', 'ts'],
    [
      { card: 'b', ts: '2024-01-01T01:00:00Z' },
      { card: 'a', ts: '2024-01-01T00:20:00Z' },
    ],
  );
  writeFileSync(
    joinPath(dir, 'repo', 'defs.ts'),
    `import { col, count, eventSource, groupBy, join, sum } from ${JSON.stringify(index)};
export const events = eventSource({ name: 'events', path: 'events.csv', timeColumn: 'ts',
  schema: { card: col.string(), amount: col.float(), ts: col.timestamp() } });
export const cards = groupBy({ name: 'card', source: events, keys: ['card'],
  aggregations: [count({ windows: ['1h'] }), sum('amount', { windows: ['1h'] })] });
export const model = join({ name: 'model', left: events, parts: [{ groupBy: cards, keys: { card: 'card' } }] });
`,
  );

  it('fails on a bad row naming file, row and column, and leaves no output', () => {
    const r = tessera(
      ['backfill', '--repo', 'repo', '--join', 'model', '--left', 'left.csv', '--out', 'out.csv'],
      dir,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `tessera: Bad input in source 'events', file ${joinPath(dir, 'repo', 'events.csv')}, row 3, column 'amount'`,
    );
    expect(existsSync(joinPath(dir, 'out.csv'))).toBe(false);
  });

  it('refuses an output in a missing folder or with an unknown extension before doing any work', () => {
    const missing = tessera(
      ['backfill', '--repo', 'repo', '--join', 'model', '--left', 'left.csv', '--out', 'nodir/o.csv'],
      dir,
    );
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`folder '${joinPath(dir, 'nodir')}' does not exist; create it first`);
    const json = tessera(
      ['backfill', '--repo', 'repo', '--join', 'model', '--left', 'left.csv', '--out', 'o.json'],
      dir,
    );
    expect(json.code).toBe(1);
    expect(json.stderr).toContain(
      'cannot tell the output format from the file name; name it .parquet or .csv',
    );
    expect(existsSync(joinPath(dir, 'o.json'))).toBe(false);
  });

  it('skips and reports bad rows with --on-bad-row skip, writing CSV', async () => {
    const r = tessera(
      [
        'backfill',
        '--repo',
        'repo',
        '--join',
        'model',
        '--left',
        'left.csv',
        '--out',
        'out.csv',
        '--on-bad-row',
        'skip',
      ],
      dir,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Wrote 2 rows × 2 features to out\.csv in [\d.]+s/);
    expect(r.stdout).toContain('Skipped 1 bad rows (--on-bad-row skip)');
    const rows = await readOutput(joinPath(dir, 'out.csv'));
    expect(rows).toEqual([
      { card: 'b', ts: '2024-01-01T01:00:00Z', card_count_1h: '0', card_amount_sum_1h: null },
      { card: 'a', ts: '2024-01-01T00:20:00Z', card_count_1h: '1', card_amount_sum_1h: '1.0' },
    ]);
  });

  it('rejects a bad --partition and an unknown join', () => {
    const bad = tessera(
      [
        'backfill',
        '--repo',
        'repo',
        '--join',
        'model',
        '--left',
        'left.csv',
        '--out',
        'o.csv',
        '--partition',
        '3/3',
      ],
      dir,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("Invalid --partition '3/3': expected i/N with 0 <= i < N");
    const unknown = tessera(
      ['backfill', '--repo', 'repo', '--join', 'nope', '--left', 'left.csv', '--out', 'o.csv'],
      dir,
    );
    expect(unknown.stderr).toContain("No join named 'nope' in the feature repo (joins: model)");
  });
});
