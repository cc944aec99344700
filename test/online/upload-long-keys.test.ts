import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { groupById } from '../../src/online/group-by-id.ts';
import { openStore } from '../../src/online/open-store.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import { uploadCutoffName } from '../../src/online/worker.ts';
import { byUser, randomEvents, tempDir } from './fixtures.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

it('upload skips and counts entities whose key is too long for the LMDB store, and uploads the rest', async () => {
  const repo = tempDir();
  const dir = tempDir();
  cleanups.push(repo.remove, dir.remove);
  const all = randomEvents(5, 300, 6);
  const long = 'é'.repeat(1000); // 2000 UTF-8 bytes: over LMDB's 1978-byte key limit, 1000 UTF-16 units
  const ts = all[0].ts as number;
  const rows = [
    ...all,
    { user: long, kind: 'a', amount: 1, ts },
    { user: long, kind: 'b', amount: 2, ts: ts + 1 },
  ];
  mkdirSync(join(repo.path, 'data'));
  writeFileSync(
    join(repo.path, 'data', 'events.jsonl'),
    rows.map((e) => JSON.stringify(e)).join('\n') + '\n',
  );
  const until = Math.max(...all.map((e) => e.ts as number)) + 1;
  const store = openStore({ kind: 'lmdb', path: dir.path });
  try {
    const res = await uploadGroupBy({ groupBy: byUser, until, store, baseDir: repo.path });
    expect({ keysTooLong: res.keysTooLong, keyTooLongEvents: res.keyTooLongEvents }).toEqual({
      keysTooLong: 1,
      keyTooLongEvents: 2,
    });
    const users = [...new Set(all.map((e) => e.user as string))];
    expect(res.entities).toBe(users.length);
    const id = groupById(byUser);
    const read = await store.readTiles(users.map((key) => ({ groupBy: id, key })));
    expect(read.every((t) => t.length > 0)).toBe(true);
    expect(await store.readOffsets([uploadCutoffName(id)])).toEqual({
      [uploadCutoffName(id)]: String(until),
    });
  } finally {
    await store.close();
  }
});
