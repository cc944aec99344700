/**
 * Functions in definitions that read a name their row or features never have (a typo, a feature renamed
 * since) used to pass `tessera plan`: the backfill then gave null for every row, even for a derivation
 * declared non-nullable, and a filter comparing such a value dropped every event. Builders now probe each
 * function once with sample values and report such reads as definition errors.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { formatPath } from '../../src/define/render-issues.ts';
import { col, count, eventSource, groupBy, join, sum, TesseraDefinitionError } from '../../src/index.ts';
import { definitionError } from './errors.ts';
import { charges } from './fixtures.ts';

type AnyRow = Record<string, any>;

const brief = (e: TesseraDefinitionError) => e.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

const spec = {
  name: 'ev',
  path: 'ev.jsonl',
  timeColumn: 'ts',
  schema: { user: col.string(), amount: col.float(), ip: col.string().nullable(), ts: col.timestamp() },
} as const;

describe('definition functions reading unknown names', () => {
  it("a source's derived column or filter reading a column the source lacks", () => {
    const e = definitionError(() =>
      eventSource({
        ...spec,
        derive: {
          cents: { type: col.int(), fn: (r: AnyRow) => Math.round(r.amont * 100) },
          big: { type: col.bool(), fn: (r: AnyRow) => r.cent > 100 || r.later > 0 },
          later: { type: col.int(), fn: (r: AnyRow) => r.cents },
        },
        filter: (r: AnyRow) => r.amont > 0,
      }),
    );
    expect(e.issues.map((i) => i.code)).toEqual(Array(4).fill('unknown_column'));
    expect(brief(e)).toEqual([
      "derive.cents.fn: derived column 'cents' reads row.amont, which source 'ev' does not have: it is undefined in every event",
      "derive.big.fn: derived column 'big' reads row.cent, which source 'ev' does not have: it is undefined in every event",
      "derive.big.fn: derived column 'big' reads row.later, a derived column declared after it: undefined there, since each derived column sees the schema columns and the derived columns declared before it",
      "filter: the filter reads row.amont, which source 'ev' does not have: it is undefined in every event, so the filter drops or keeps them all alike",
    ]);
    expect(e.issues[0]!.fix).toBe(
      "did you mean 'amount'? the columns it can read are: 'user', 'amount', 'ip', 'ts'",
    );
    expect(e.issues[1]!.fix).toBe(
      "did you mean 'cents'? the columns it can read are: 'user', 'amount', 'ip', 'ts', 'cents'",
    );
    expect(e.issues[2]!.fix).toBe("declare 'later' before 'big' in derive");
    expect(e.issues[3]!.fix).toContain(
      "did you mean 'amount'? the columns are: 'user', 'amount', 'ip', 'ts', 'cents'",
    );
  });

  it('a join derivation reading a feature the parts lack, another derivation, or a left column the source lacks', () => {
    const stats = groupBy({
      name: 'user_stats',
      source: eventSource(spec),
      keys: ['user'],
      aggregations: [count({ windows: ['1h'] }), sum('amount', { windows: ['7d'] })],
    });
    const e = definitionError(() =>
      join({
        name: 'model',
        left: eventSource(spec),
        parts: [{ groupBy: stats, keys: { user: 'user' } }],
        derive: {
          avg: { type: col.float(), fn: (f: AnyRow) => f.user_stats_amount_sum_30d / f.user_stats_count_1h },
          ratio: { type: col.float(), fn: (f: AnyRow, row: AnyRow) => row.amuont / (f.avg ?? 1) },
        },
      }),
    );
    expect(e.issues.map((i) => i.code)).toEqual(['unknown_feature', 'unknown_feature', 'unknown_column']);
    expect(brief(e)).toEqual([
      "derive.avg.fn: derivation 'avg' reads feature 'user_stats_amount_sum_30d', which the join's parts do not produce: it is undefined for every row",
      "derive.ratio.fn: derivation 'ratio' reads feature 'avg', a derivation: undefined there, since derivations see the parts' features only",
      "derive.ratio.fn: derivation 'ratio' reads row.amuont, which left source 'ev' does not have: it is undefined for every row",
    ]);
    expect(e.issues[0]!.fix).toBe(
      "did you mean 'user_stats_amount_sum_7d'? the parts' features are: 'user_stats_count_1h', 'user_stats_amount_sum_7d'",
    );
    expect(e.issues[2]!.fix).toBe(
      "did you mean 'amount'? the left columns are: 'user', 'amount', 'ip', 'ts'",
    );
  });

  it('reports nothing for functions that only read known names, however they read them', () => {
    const stats = groupBy({
      name: 's',
      source: charges,
      keys: ['card_id'],
      aggregations: [count({ windows: ['1h'] })],
    });
    const source = eventSource({
      ...spec,
      derive: {
        // Throws on the null sample (ignored); reads only known names.
        prefix: { type: col.string(), fn: (r) => r.ip!.slice(0, 3) },
        has_ip: { type: col.bool(), fn: (r) => 'ip' in r && !('nope' in r) },
        width: { type: col.int(), fn: (r) => Object.keys(r).length + JSON.stringify({ ...r }).length },
        text: { type: col.string(), fn: (r) => `${String(r)} ${r.toString()} ${r.hasOwnProperty('x')}` },
      },
      filter: (r) => Object.entries(r).length > 0 && r.amount > 0,
    });
    expect(source.derived.prefix!.fn({ ip: '10.0.0.1' })).toBe('10.');
    const model = join({
      name: 'm',
      left: charges,
      parts: [{ groupBy: stats, keys: { card_id: 'card_id' } }],
      derive: {
        r: { type: col.float(), fn: (f, row) => (f.s_count_1h > 0 ? row.amount / f.s_count_1h : null) },
        // Plain JS allows an async derivation (its reads before the first await are probed).
        later: { type: col.float(), fn: (async (f: AnyRow) => f.s_count_1h) as unknown as () => number },
      },
    });
    expect(model.derivations.length).toBe(2);
  });

  it('says a part whose group-by is undefined is likely a bad import or export', () => {
    const e = definitionError(() =>
      join({
        name: 'm',
        left: charges,
        parts: [{ groupBy: undefined, keys: { card_id: 'card_id' } }] as never,
      }),
    );
    expect(brief(e)).toEqual(['parts[0].groupBy: groupBy is undefined']);
    expect(e.issues[0]!.fix).toContain('check the import and the export of the group-by');
  });
});

describe('loadRepo', () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('reports unknown reads with their file, and a group-by imported under a name not exported', async () => {
    const dir = await mkdtemp(pathJoin(tmpdir(), 'tessera-probe-'));
    dirs.push(dir);
    const pkg = JSON.stringify(pathJoin(import.meta.dirname, '../../src/index.ts'));
    await writeFile(
      pathJoin(dir, 'sources.ts'),
      `import { col, eventSource, groupBy, count } from ${pkg};
export const ev = eventSource({ name: 'ev', path: 'ev.jsonl', timeColumn: 'ts',
  schema: { user: col.string(), amount: col.float(), ts: col.timestamp() },
  filter: (r: any) => r.amont > 0 });
export const ok = eventSource({ name: 'ok', path: 'ev.jsonl', timeColumn: 'ts',
  schema: { user: col.string(), amount: col.float(), ts: col.timestamp() } });
export const userStats = groupBy({ name: 'user_stats', source: ok, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
`,
    );
    await writeFile(
      pathJoin(dir, 'model.ts'),
      `import { col, join } from ${pkg};
import { ok, userStats, usrStats } from './sources.ts';
export const m = join({ name: 'm', left: ok, parts: [{ groupBy: userStats, keys: { user: 'user' } }],
  derive: { a: { type: col.float(), fn: (f: any) => f.user_stats_count_1d } } });
export const m2 = join({ name: 'm2', left: ok, parts: [{ groupBy: usrStats, keys: { user: 'user' } }] });
`,
    );
    const error = await loadRepo(dir, { checkFiles: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraDefinitionError);
    expect(
      (error as TesseraDefinitionError).issues.map(
        (i) => `${i.file} › ${i.definition} › ${formatPath(i.path)}: ${i.code}: ${i.message.split(',')[0]}`,
      ),
    ).toEqual([
      "model.ts › join 'm' › derive.a.fn: unknown_feature: derivation 'a' reads feature 'user_stats_count_1d'",
      "model.ts › join 'm2' › parts[0].groupBy: missing_field: groupBy is undefined",
      "sources.ts › eventSource 'ev' › filter: unknown_column: the filter reads row.amont",
    ]);
  });
});
