import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { replayFile } from '../../src/online/replay-file.ts';
import { CheckedRows, validateEvent } from '../../src/online/validate-event.ts';
import { events, groupBys, tempDir } from './fixtures.ts';

// validateEvent counted: a replay's staged rows are checked in SQL, so ingest must not check them again.
vi.mock('../../src/online/validate-event.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/online/validate-event.ts')>();
  return { ...actual, validateEvent: vi.fn(actual.validateEvent) };
});
const validations = vi.mocked(validateEvent);

const dir = tempDir('tessera-checked-rows-');
afterAll(() => dir.remove());
beforeEach(() => {
  validations.mockClear();
});

describe('rows checked before ingest', () => {
  it("a replay's staged events are validated once (in SQL), not again by ingest", async () => {
    const file = join(dir.path, 'clean.csv');
    const lines = Array.from({ length: 12 }, (_, i) => `u${i % 3},a,${i}.5,2024-01-01T00:0${i % 10}:00Z`);
    writeFileSync(file, `user,kind,amount,ts\n${lines.join('\n')}\n`);
    for (const onBadRow of ['fail', 'skip'] as const) {
      const log = openFileLog(join(dir.path, `log-${onBadRow}`));
      const r = await replayFile({
        log,
        source: events,
        groupBys,
        file,
        onBadRow,
        dedupe: true,
        checkLmdbKeys: true,
        chunkRows: 5,
      });
      expect(r).toMatchObject({ appended: 12, skipped: 0 });
      expect(validations).not.toHaveBeenCalled();
      await log.close();
    }
  });

  it('events of other callers, and rows checked for another source, are still validated and refused', async () => {
    const log = openFileLog(join(dir.path, 'log-other'));
    const bad = { user: null, kind: 'a', amount: 1, ts: 1 };
    await expect(ingestEvents(log, events, groupBys, [bad])).rejects.toThrow(
      /column 'user': required column is missing or null/,
    );
    const other = { ...events, name: 'other' };
    await expect(ingestEvents(log, events, groupBys, new CheckedRows(other, [bad as never]))).rejects.toThrow(
      /required column is missing or null/,
    );
    expect(validations).toHaveBeenCalledTimes(2);
    expect(await log.endOffsets('events')).toEqual([0]);
    await log.close();
  });
});
