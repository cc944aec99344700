/**
 * Audit finding: two processes writing one embedded log (two `tessera serve` on one --data-dir, or
 * `tessera stream --replay` next to a running `tessera serve`, which the README says share state through
 * --data-dir) overwrite each other's frames: every POST is acknowledged, yet half the events are gone from
 * the log and a worker stalls with lag > 0 (seen end to end: 2 × 2000 events acknowledged, 2000 in the
 * segment file, acc_count_lifetime 200). The store's fencing stops the second worker, but nothing guards
 * the log. Two FileLog instances on one folder stand for the two processes here: either the second open
 * is refused, or every acknowledged event is readable.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/online/log/file-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-two-writers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded log with two writers', () => {
  it('a second writer is refused, and no acknowledged event is lost', async () => {
    const a = openFileLog(dir, { partitions: 1 });
    const b = openFileLog(dir, { partitions: 1 });
    const batch = (w: string, i: number) =>
      Array.from({ length: 50 }, (_, j) => ({ partitionKey: '', event: { w, i, j, ts: 1 } }));
    let acknowledged = 0;
    for (let i = 0; i < 10; i++) {
      await a.append('clicks', batch('a', i));
      acknowledged += 50;
      // The first append took the folder's writer lock: the second writer's appends are refused.
      await expect(b.append('clicks', batch('b', i))).rejects.toThrow(
        /being written by another log instance of this process/,
      );
    }
    const reader = openFileLog(dir, { partitions: 1 });
    const records = await reader.read('clicks', 0, 0, 10_000);
    expect(records.length).toBe(acknowledged);
    await Promise.all([b.close(), reader.close()]);
    // Closing releases the lock: the next writer may append.
    await a.close();
    const c = openFileLog(dir, { partitions: 1 });
    await c.append('clicks', batch('c', 0));
    expect((await c.endOffsets('clicks'))[0]).toBe(acknowledged + 50);
    await c.close();
  });

  it('takes over the lock of a writer that is gone', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tessera-audit-stale-lock-'));
    try {
      // A pid no process has (beyond the default pid_max), as a crashed writer leaves it.
      writeFileSync(join(d, '.writer.lock'), '99999999\n');
      const log = openFileLog(d, { partitions: 1 });
      await log.append('clicks', [{ partitionKey: '', event: { ts: 1 } }]);
      await log.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
