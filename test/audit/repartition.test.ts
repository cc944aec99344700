/**
 * Audit finding: restarting `tessera serve` (or `tessera stream`) on the same --data-dir with another
 * --partitions silently loses events. With P > 1 events go to per-key-list topics (`clicks.a`), with P = 1
 * to `clicks`, and a partition's entities move with P; events appended under the old count and not yet
 * applied are never read by the new workers, while lag reports 0. Seen end to end: serve-oracle.test.ts
 * run `lmdb-repartition` (AUDIT_RUNS=lmdb-repartition; --partitions 2, 3, 1 across SIGKILL restarts):
 * lifetime counts short by ~3% with status `ok`. The log must remember its partition count and refuse
 * another one with the fix, as the Redis store already does for its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/online/log/file-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-repartition-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('file log partition count', () => {
  it('reopening a log with another partition count is refused, naming the count it was written with', async () => {
    const log = openFileLog(dir, { partitions: 2 });
    await log.append('clicks.a', [{ partitionKey: 'k1', event: { a: 1, ts: 1 } }]);
    await log.close();
    expect(() => openFileLog(dir, { partitions: 3 })).toThrow(/2 partitions/);
    expect(() => openFileLog(dir, { partitions: 1 })).toThrow(/pass --partitions 2/);
    const again = openFileLog(dir, { partitions: 2 });
    expect(await again.endOffsets('clicks.a')).toHaveLength(2);
    await again.close();
  });
});
