/**
 * Outside-check finding (H3): a serving node started with `--no-workers` (workers run in `tessera stream`
 * processes) reported `tessera_source_lag_events` 0 and never answered `stale`, however many ingested
 * events no worker had applied: its lag and staleness came only from workers in its own process. The
 * README promises lag per source in /metrics and `stale` when a source's workers leave events unapplied
 * longer than `--stale-after`; a stateless serving node is where those are read. Both can be known from the
 * log's end offsets and the offsets the workers commit to the store.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ServeProcess } from '../acceptance/serve-process.ts';
import { BIN, PKG, removeTempDirs, tempDir } from '../acceptance/support.ts';

const T = Date.UTC(2026, 0, 5);

function writeRepo(dir: string): void {
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'data', 'ev.jsonl'), JSON.stringify({ user: 'u', ts: T }) + '\n');
  writeFileSync(
    join(dir, 'defs.ts'),
    `import { col, eventSource, groupBy, count } from ${JSON.stringify(PKG)};
export const ev = eventSource({ name: 'ev', path: 'data/ev.jsonl', timeColumn: 'ts',
  schema: { user: col.string(), ts: col.timestamp() } });
export const g = groupBy({ name: 'g', source: ev, keys: ['user'], aggregations: [count({ windows: ['lifetime'] })] });
`,
  );
}

afterAll(removeTempDirs);

describe('serve --no-workers next to tessera stream', () => {
  it('reports the lag of events no worker applied yet, and answers stale', async () => {
    const dir = tempDir('tessera-h3-noworkers-');
    const repo = join(dir, 'repo');
    const dataDir = join(dir, 'state');
    writeRepo(repo);
    const srv = new ServeProcess([
      '--repo',
      repo,
      '--data-dir',
      dataDir,
      '--no-workers',
      '--stale-after',
      '300',
    ]);
    await srv.start();
    const stream = () =>
      spawn(process.execPath, [BIN, 'stream', '--repo', repo, '--data-dir', dataDir], { stdio: 'ignore' });
    let worker = stream();
    const lag = async () => {
      const text = await (await fetch(srv.url + '/metrics')).text();
      const line = text.split('\n').find((l) => l.startsWith('tessera_source_lag_events{source="ev"}'));
      return line ? Number(line.split(' ').pop()) : null;
    };
    const fetchG = async () =>
      (await (await fetch(`${srv.url}/v1/groupbys/g?user=u&at=${T + 10}`)).json()) as any;
    const post = (n: number) =>
      fetch(srv.url + '/v1/events/ev', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(Array.from({ length: n }, (_, i) => ({ user: 'u', ts: T + i }))),
      });
    const until = async (what: () => Promise<boolean>, waitingFor: string) => {
      const deadline = Date.now() + 30_000;
      while (!(await what())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${waitingFor}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // The node sees the workers' commits through a read every 100 ms, so status and lag follow a value
    // that a fetch (which reads the store itself) already shows by up to that long.
    const ok = async () => (await fetchG()).status.g_count_lifetime === 'ok';
    try {
      // With the worker running, 3 events are applied: lag 0, status ok.
      expect((await post(3)).status).toBe(200);
      await until(async () => (await fetchG()).features.g_count_lifetime === 3, 'count 3');
      await until(ok, "status 'ok'");
      expect(await lag()).toBe(0);

      // The worker dies; 5 more events wait in the log.
      await new Promise<void>((done) => {
        worker.once('exit', () => done());
        worker.kill('SIGKILL');
      });
      expect((await post(5)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1000));
      expect(await lag()).toBe(5);
      const stale = await fetchG();
      expect(stale.features.g_count_lifetime).toBe(3);
      expect(stale.status.g_count_lifetime).toBe('stale');

      // A new worker catches up.
      worker = stream();
      await until(async () => (await fetchG()).features.g_count_lifetime === 8, 'count 8');
      await until(async () => (await lag()) === 0, 'lag 0');
      await until(ok, "status 'ok' again");
    } finally {
      worker.kill('SIGKILL');
      await srv.stop('SIGKILL');
    }
  }, 90_000);
});
