import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { groupById } from '../../src/online/group-by-id.ts';
import { createClient, TesseraClientError } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { LMDB_MAX_KEY_BYTES, oversizeKeyIssues } from '../../src/serve/key-size-check.ts';
import { tempDir } from '../offline/support.ts';
import { cardStats, modelA, repo, tx } from './fixtures.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * A key too long for LMDB used to be acknowledged by POST /v1/events, then fail its worker's every commit:
 * the partition applied nothing after it, for good. Ingest must refuse it with the row, column and fix.
 */
describe('entity keys too long for the LMDB store', () => {
  it('are rejected at ingest with 400, and later events still apply', { timeout: 60_000 }, async () => {
    const dir = tempDir('tessera-key-size-');
    dirs.push(dir);
    const server = await startEmbedded({ repo, dataDir: join(dir, 'state'), port: 0 });
    try {
      const client = createClient({ url: server.url });
      const t = Date.now();
      const long = { card_id: 'c'.repeat(5000), merchant_id: 'm1', amount: 1, ts: t - 3000 };
      const error = await client.ingest('tx', [long]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TesseraClientError);
      expect((error as TesseraClientError).statusCode).toBe(400);
      expect((error as Error).message).toMatch(
        /row 0, column 'card_id': the key of group-by 'card_stats' is 5000 bytes, more than the LMDB store's \d+ for it\. Send shorter key values/,
      );

      await client.ingest('tx', [{ card_id: 'c1', merchant_id: 'm1', amount: 3, ts: t - 1000 }]);
      const drained = await Promise.race([
        server.drain().then(() => true),
        new Promise((r) => setTimeout(() => r(false), 20_000)),
      ]);
      expect(drained).toBe(true);
      const [row] = await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }]);
      expect(row!.features.card_stats_count_1h).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('are measured in UTF-8 bytes against the room the store id leaves', () => {
    const room = LMDB_MAX_KEY_BYTES - 1 - Buffer.byteLength(groupById(cardStats));
    const event = (card_id: string) => ({ card_id, merchant_id: 'm', amount: 1, ts: 1 });
    const check = (card_id: string) =>
      oversizeKeyIssues(tx, [cardStats], [event(card_id)], groupById, 'request body');
    expect(check('a'.repeat(room))).toEqual([]);
    expect(check('a'.repeat(room + 1))).toHaveLength(1);
    // 'é' is 2 bytes: half the characters fit.
    expect(check('é'.repeat(Math.floor(room / 2)))).toEqual([]);
    expect(check('é'.repeat(Math.floor(room / 2) + 1))).toHaveLength(1);
  });
});
