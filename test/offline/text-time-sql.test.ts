import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEventTime } from '../../src/aggregate/event-time.ts';
import { openScratchDb } from '../../src/offline/duck.ts';
import { stageSource } from '../../src/offline/stage-source.ts';
import { isoPartsSql, textTimeMsSql } from '../../src/offline/text-time-sql.ts';
import { events, rng, tempDir } from '../online/fixtures.ts';

/**
 * Text times converted in SQL (a replay's staging) must be exactly `parseEventTime`'s: SQL takes the
 * common shapes and leaves the rest (NULL) to the JS parser, never giving another value.
 */
const dir = tempDir('tessera-text-time-');
afterAll(() => dir.remove());

const EDGES = [
  '0',
  '-0',
  '-00',
  '007',
  '1.0',
  '-1.00',
  '1704067200000',
  '1704067200000.0',
  '1.7040672e12',
  '1.5',
  '999999999999999',
  '9999999999999999',
  '-999999999999999',
  ' 12',
  '12 ',
  '2024-01-01',
  '2024-02-29',
  '2023-02-29',
  '1900-02-29',
  '2000-02-29',
  '0000-01-01',
  '0000-02-29',
  '0001-03-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '1969-12-31T23:59:59.999Z',
  '1960-06-15 12:00:00.5+05:30',
  '2024-05-01T12:00:00.123456Z',
  '2024-05-01 14:00:00+02:00',
  '2024-05-01 14:00+0200',
  '2024-05-01 14:00-02',
  '2024-05-01T24:00:00Z',
  '2024-05-01T23:60:00Z',
  '2024-05-01T23:00:60Z',
  '2024-13-01',
  '2024-00-10',
  '2024-01-00',
  '2024-01-32',
  '2024-05-01t12:00:00z',
  '2024-05-01 12:00:00 Z',
  ' 2024-05-01',
  '2024-05-01T12',
  'yesterday',
  '',
  '2024-05-01T12:00:00,5Z',
  '2024-05-01+99:99',
  '2024-05-01T12:00:00.Z',
  '٢٠٢٤-05-01',
];

/** Random ISO texts (valid and not, pre-1970, odd zones and fractions) and number texts. */
function randomTexts(n: number): string[] {
  const r = rng(7);
  const int = (k: number) => Math.floor(r() * k);
  const pad = (v: number, w: number) => String(v).padStart(w, '0');
  const pick = (a: string[]) => a[int(a.length)]!;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = `${pad(int(10) < 7 ? 1900 + int(200) : int(10000), 4)}-${pad(int(14), 2)}-${pad(int(33), 2)}`;
    if (int(5) > 0) {
      s += `${pick(['T', ' ', 't'])}${pad(int(25), 2)}:${pad(int(61), 2)}`;
      if (int(4) > 0)
        s += `:${pad(int(61), 2)}${int(2) ? pick(['.', ',']) + pad(int(10 ** 6), 1 + int(6)) : ''}`;
    }
    const z = int(6);
    if (z === 1) s += pick(['Z', 'z']);
    else if (z >= 2)
      s += pick(['+', '-']) + pad(int(24), 2) + pick([':', '']) + (int(3) ? pad(int(60), 2) : '');
    out.push(s, `${int(2) ? '-' : ''}${int(2 ** 31) * int(10 ** 6)}${pick(['', '.0', '.00', '.5', 'e0'])}`);
  }
  return out;
}

describe('text times converted in SQL', () => {
  it('are parseEventTime to the bit where SQL converts them (NULL elsewhere)', async () => {
    const texts = [...EDGES, ...randomTexts(20_000)];
    const db = await openScratchDb();
    try {
      await db.conn.run('CREATE TABLE t (i INTEGER, x VARCHAR)');
      const app = await db.conn.createAppender('t');
      texts.forEach((x, i) => {
        app.appendInteger(i);
        app.appendVarchar(x);
        app.endRow();
      });
      app.closeSync();
      const r = await db.conn.runAndReadAll(
        `SELECT i, ${textTimeMsSql('x', 'p')} FROM (SELECT i, x, ${isoPartsSql('x')} AS p FROM t) ORDER BY i`,
      );
      const rows = r.getRows() as [number, number | null][];
      const converted = rows.filter(([, v]) => v !== null);
      const mismatches = converted.filter(([i, v]) => !Object.is(parseEventTime(texts[i]), v));
      expect(mismatches.map(([i, v]) => [texts[i], v])).toEqual([]);
      // The common shapes are converted: most valid random texts, and these.
      const sql = new Map(rows.map(([i, v]) => [texts[i], v]));
      for (const t of [
        '2024-05-01 14:00:00+02:00',
        '1969-12-31T23:59:59.999Z',
        '1704067200000.0',
        '0000-02-29',
      ])
        expect(sql.get(t)).toBe(parseEventTime(t));
      expect(converted.length).toBeGreaterThan(texts.length / 2);
    } finally {
      db.close();
    }
  });

  it('stage a file to the times parseEventTime gives, also where JS parses the rows SQL does not convert', async () => {
    const times = ['2024-05-01 14:00:00+02:00', '1960-06-15T12:00:00.5Z', '1704067200000.0', '1704067200000'];
    for (const [extra, textTimesInSql] of [
      [[], true],
      [[' 2024-05-01T12:00:00Z', '1.7040672e12'], true],
      [[], false],
    ] as const) {
      const all = [...times, ...extra];
      const file = join(dir.path, `times-${extra.length}-${textTimesInSql}.csv`);
      writeFileSync(file, `user,kind,amount,ts\n${all.map((t, i) => `u${i},a,1,${t}`).join('\n')}\n`);
      const db = await openScratchDb();
      try {
        const raw = { ...events, format: 'auto' as const, derived: {}, filter: undefined };
        const staged = await stageSource(db.conn, raw, {
          baseDir: dir.path,
          files: [file],
          onBadRow: 'fail',
          tableName: 'src',
          textTimesInSql,
        });
        const r = await db.conn.runAndReadAll(`SELECT __t, ts FROM "${staged.relation}" ORDER BY __seq`);
        const want = all.map((t) => parseEventTime(t.trim()));
        expect(r.getRows()).toEqual(want.map((t) => [t, t]));
      } finally {
        db.close();
      }
    }
  });
});
