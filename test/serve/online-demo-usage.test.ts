import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { collectUsage } from '../../src/online/usage.ts';
import { uploadHistory } from '../../src/serve/online-demo.ts';
import { byUser, events, randomEvents, tempDir } from '../online/fixtures.ts';

/** `npm start` uploads the fraud history with `uploadHistory`; its usage report must count that upload. */
const dir = tempDir('tessera-demo-usage-');
afterAll(() => dir.remove());

describe('online demo upload', () => {
  it('records upload events and time per group-by, as tessera upload does', async () => {
    const all = randomEvents(3, 200, 5);
    mkdirSync(join(dir.path, 'data'));
    writeFileSync(join(dir.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
    const source = { ...events, baseDir: dir.path };
    const groupBy = { ...byUser, source };
    const dataDir = join(dir.path, 'online');
    const result = await uploadHistory({ groupBys: [groupBy] }, dataDir);
    expect(result.events).toBeGreaterThan(100);

    const store = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
    try {
      const report = await collectUsage({ store, groupBys: [groupBy], joins: [] });
      expect(report.groupBys[0]!.events.uploaded).toBe(result.events);
      expect(report.groupBys[0]!.cost.uploadMs).toBeGreaterThanOrEqual(0);
    } finally {
      await store.close();
    }
  });
});
