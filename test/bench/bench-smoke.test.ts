import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The benchmarks are not part of `npm test`, but a user runs them on a fresh clone: run each once, tiny, on
 * LMDB, through npm's script (the README's command), and check it prints its table with numbers.
 */
const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

async function bench(script: string, args: string[]): Promise<string> {
  const { stdout } = await run('npm', ['run', '--silent', script, '--', ...args], {
    cwd: ROOT,
    timeout: 120_000,
    maxBuffer: 16 * 2 ** 20,
  });
  return stdout;
}

/** The row of the final table for `store`, split into cells. */
const row = (out: string, store: string) =>
  out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((cells) => cells[0] === store);

describe('benchmarks run', () => {
  it('bench:stream prints throughput and freshness', { timeout: 120_000 }, async () => {
    const out = await bench('bench:stream', [
      '--events',
      '3000',
      '--stores',
      'lmdb',
      '--probes',
      '3',
      '--rate',
      '50',
    ]);
    // The final tables: throughput per timing (replay, live), then freshness (progress lines come first).
    const rows = row(out, 'lmdb').slice(-3);
    expect(rows.map((cells) => cells.length)).toEqual([8, 8, 6]);
    const [replay, live, fresh] = rows as [string[], string[], string[]];
    expect([replay[1], live[1]]).toEqual(['replay', 'live']);
    // ingest ev/s, worker ev/s, ev/s/core, +store CPU, baseline, ratio; bg ev/s, probes, p50/p99/max ms.
    for (const c of [...replay.slice(2), ...live.slice(2), ...fresh.slice(1)])
      expect(Number(c)).toBeGreaterThan(0);
  });

  it('bench:serve prints latency, throughput and the floor', { timeout: 120_000 }, async () => {
    const out = await bench('bench:serve', [
      ...['--keys', '2000', '--duration', '1', '--repeat', '1', '--rate', '50'],
      ...['--features', '50', '--batches', '1', '--stores', 'lmdb'],
    ]);
    const rows = row(out, 'lmdb');
    expect(rows).toHaveLength(1);
    // 2000 keys fit any machine: the memory check (keysThatFit) keeps them all.
    const [store, features, keys, rowsPerFetch, ...numbers] = rows[0]!;
    expect([store, features, keys, rowsPerFetch]).toEqual(['lmdb', '50', '2000', '1']);
    expect(numbers.at(-1)).toBe('0'); // errors
    for (const c of numbers.slice(0, -1)) expect(Number(c)).toBeGreaterThan(0);
    // The server's own time (Server-Timing) next to client latency: each response's server time lies within
    // its client time, so its percentiles cannot exceed the client's.
    const header = out
      .split('\n')
      .find((l) => l.trim().startsWith('store'))!
      .trim()
      .split(/\s{2,}/);
    const cell = (name: string) => Number(rows[0]![header.indexOf(name)]);
    expect(header).toEqual(expect.arrayContaining(['p50 ms', 'p99 ms', 'srv p50', 'srv p99']));
    expect(header).toHaveLength(rows[0]!.length);
    expect(cell('srv p50')).toBeLessThanOrEqual(cell('p50 ms'));
    expect(cell('srv p99')).toBeLessThanOrEqual(cell('p99 ms'));
    expect(cell('srv p50')).toBeLessThanOrEqual(cell('srv p99'));
  });
});
