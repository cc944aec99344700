/**
 * Outside-check finding (H3): a join derivation over features whose entity answers `inexact` (the fetch
 * time is before its exact-from time, so the part's values are null) was still run. A derivation typed
 * from non-null features (`count` is `number`) then threw, and the whole request failed with a 500, or
 * returned a number computed from nulls (`null + null` = 0) under status `inexact`, where the README
 * promises `inexact` values are null. Now a derivation that reads an `inexact` feature is null and
 * `inexact` (whether it returned or threw); one that reads none of them is computed as usual.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ServeProcess } from '../acceptance/serve-process.ts';
import { PKG, removeTempDirs, tempDir } from '../acceptance/support.ts';

const H = 3_600_000;
const T = Date.UTC(2026, 0, 5);

function writeRepo(dir: string): void {
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'data', 'ev.jsonl'), JSON.stringify({ user: 'u', ts: T }) + '\n');
  writeFileSync(
    join(dir, 'defs.ts'),
    `import { col, eventSource, groupBy, join, count } from ${JSON.stringify(PKG)};
export const ev = eventSource({ name: 'ev', path: 'data/ev.jsonl', timeColumn: 'ts',
  schema: { user: col.string(), ts: col.timestamp() } });
export const g = groupBy({ name: 'g', source: ev, keys: ['user'], aggregations: [count({ windows: ['1h'] })] });
export const j = join({ name: 'j', left: ev, parts: [{ groupBy: g, keys: { user: 'user' } }], derive: {
  digits: { type: col.int(), fn: (f) => f.g_count_1h.toString().length },
  doubled: { type: col.int(), fn: (f) => f.g_count_1h + f.g_count_1h },
  hour: { type: col.int(), fn: (_f, row) => new Date(row.ts).getUTCHours() },
} });
`,
  );
}

afterAll(removeTempDirs);

describe('derivations of inexact features', () => {
  it('are null with status inexact, and the request still succeeds', async () => {
    const dir = tempDir('tessera-h3-deriv-');
    const repo = join(dir, 'repo');
    writeRepo(repo);
    const srv = new ServeProcess(['--repo', repo, '--data-dir', join(dir, 'state'), '--exact-history', '0']);
    await srv.start();
    try {
      const post = (path: string, body: unknown) =>
        fetch(srv.url + path, { method: 'POST', headers: srv.headers, body: JSON.stringify(body) }).then(
          async (r) => ({ status: r.status, json: await r.json() }),
        );
      const send = async (ts: number) =>
        expect((await post('/v1/events/ev', [{ user: 'u', ts }])).status).toBe(200);
      // Events over 10 hours, then one 10 hours late: beyond retention, so the entity is compacted and its
      // exact-from time raised; a fetch before that is inexact.
      for (let i = 0; i <= 10; i++) await send(T + i * H);
      await send(T + 30 * 60_000);
      const deadline = Date.now() + 30_000;
      let late = 0;
      while (late < 1 && Date.now() < deadline) {
        const text = await (await fetch(srv.url + '/metrics', { headers: srv.headers })).text();
        const line = text
          .split('\n')
          .find((l) => l.startsWith('tessera_groupby_events_late_beyond_retention{group_by="g"}'));
        late = line ? Number(line.split(' ').pop()) : 0;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(late).toBe(1);

      const old = await post('/v1/features/j', { keys: { user: 'u' }, at: T + H + 1 });
      expect(old.status, JSON.stringify(old.json)).toBe(200);
      // A derivation that reads none of the inexact features (only the request row) is still computed.
      expect(old.json.status).toEqual({
        g_count_1h: 'inexact',
        digits: 'inexact',
        doubled: 'inexact',
        hour: 'ok',
      });
      expect(old.json.features).toEqual({ g_count_1h: null, digits: null, doubled: null, hour: 1 });

      // Exact times still run the derivations.
      const now = await post('/v1/features/j', { keys: { user: 'u' }, at: T + 10 * H + 1 });
      // The 1h window (5m hops) at T+10h+1ms starts at T+9h: two events.
      expect(now.json.features).toEqual({ g_count_1h: 2, digits: 1, doubled: 4, hour: 10 });
      expect(now.json.status.digits).toBe('ok');
    } finally {
      await srv.stop('SIGKILL');
    }
  }, 60_000);
});
