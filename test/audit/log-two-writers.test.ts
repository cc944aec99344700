/**
 * Audit finding: two processes writing one embedded log (two `tessera serve` on one --data-dir, or
 * `tessera stream --replay` next to a running `tessera serve`, which the README says share state through
 * --data-dir) overwrite each other's frames: every POST is acknowledged, yet half the events are gone from
 * the log and a worker stalls with lag > 0 (seen end to end: 2 × 2000 events acknowledged, 2000 in the
 * segment file, acc_count_lifetime 200). The store's fencing stops the second worker, but nothing guards
 * the log. Two FileLog instances on one folder stand for the two processes here: either the second open
 * is refused, or every acknowledged event is readable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/online/log/file-log.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-two-writers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded log with two writers', () => {
  // it.fails until the file log is guarded against a second writer (reported in notes/helpers/msgs.md).
  it.fails('a second writer is refused, or no acknowledged event is lost', async () => {
    const a = openFileLog(dir, { partitions: 1 });
    let b: EventLog;
    try {
      b = openFileLog(dir, { partitions: 1 });
    } catch {
      await a.close();
      return; // refused: fine
    }
    const batch = (w: string, i: number) =>
      Array.from({ length: 50 }, (_, j) => ({ partitionKey: '', event: { w, i, j, ts: 1 } }));
    for (let i = 0; i < 10; i++) {
      await a.append('clicks', batch('a', i));
      await b.append('clicks', batch('b', i));
    }
    const reader = openFileLog(dir, { partitions: 1 });
    const records = await reader.read('clicks', 0, 0, 10_000);
    await Promise.all([a.close(), b.close(), reader.close()]);
    expect(records.length).toBe(1000);
  });
});
