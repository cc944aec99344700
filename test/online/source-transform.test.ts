/**
 * Derived columns and filters online: each function sees the schema columns and the derived columns before
 * it, and its row is read-only (as offline, test/offline/js-pass.test.ts), so a definition that changes its
 * row fails instead of changing online features only.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Row, SourceDef } from '../../src/define/types.ts';
import { col, eventSource, groupBy, sum } from '../../src/index.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { deriveAndFilter, deriveColumns } from '../../src/online/source-transform.ts';
import { partitionKeyOf, streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { tempDir, T0 } from './fixtures.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

/**
 * `payments` with the given derived columns (`cents`, then `double_cents` reading it, by default) and filter
 * (by default on `double_cents` when there is one: a filter reading a column the source lacks is refused).
 */
function payments(
  derive: Parameters<typeof eventSource>[0]['derive'] = {
    cents: { type: col.float(), fn: (r) => (r.amount as number) * 100 },
    double_cents: { type: col.float(), fn: (r) => (r.cents as number) * 2 },
  },
  filter: ((r: Row) => boolean) | undefined = 'double_cents' in derive
    ? (r) => (r.double_cents as number) > 0
    : undefined,
): SourceDef {
  return eventSource({
    name: 'payments',
    path: 'payments.jsonl',
    timeColumn: 'ts',
    schema: { user: col.string(), amount: col.float(), ts: col.timestamp() },
    derive,
    filter,
  });
}

const row = (amount: number): Row => ({ user: 'u1', amount, ts: T0 });
const READ_ONLY = (column: string, fn: string) =>
  new RegExp(
    `^source 'payments': a derived column or the filter assigned '${column}' of its input row; ` +
      `rows are read-only: add the value as a derived column instead \\(${fn}, at here\\)$`,
  );

describe('deriveAndFilter', () => {
  it('gives each function the schema columns and the derived columns so far, then writes them to the row', () => {
    const seen: string[][] = [];
    const source = payments(
      {
        cents: {
          type: col.float(),
          fn: (r) => (seen.push(Object.keys({ ...r })), (r.amount as number) * 100),
        },
        double_cents: {
          type: col.float(),
          fn: (r) => (seen.push(Object.keys(r)), 'double_cents' in r ? -1 : (r.cents as number) * 2),
        },
        none: { type: col.float().nullable(), fn: () => undefined },
      },
      (r) => (seen.push(Object.keys(r)), (r.double_cents as number) > 0),
    );
    seen.length = 0; // the definition's probe of the functions (probe-reads.ts) called them too
    const kept = row(1.5);
    expect(deriveAndFilter(source, kept, 'here')).toBe(true);
    expect(kept).toEqual({ user: 'u1', amount: 1.5, ts: T0, cents: 150, double_cents: 300, none: null });
    expect(seen).toEqual([
      ['user', 'amount', 'ts'],
      ['user', 'amount', 'ts', 'cents'],
      ['user', 'amount', 'ts', 'cents', 'double_cents', 'none'],
    ]);
    const dropped = row(-2);
    expect(deriveAndFilter(source, dropped, 'here')).toBe(false);
    expect(dropped).toEqual(row(-2));
  });

  it('fails naming the source, the column and the function when a derived column changes its row', () => {
    const changes: [string, (r: Row) => void][] = [
      ['amount', (r) => void (r.amount = Math.abs(r.amount as number))],
      ['extra', (r) => void (r.extra = 1)],
      ['amount', (r) => void delete r.amount],
      ['user', (r) => void Object.assign(r, { user: 'u2' })],
      ['cents', (r) => void Object.defineProperty(r, 'cents', { value: 1 })],
    ];
    for (const [column, change] of changes) {
      const source = payments({
        cents: { type: col.float(), fn: (r) => r.amount },
        abs: { type: col.float(), fn: (r) => (change(r), 1) },
      });
      const r = row(-2);
      expect(() => deriveAndFilter(source, r, () => 'here')).toThrow(
        READ_ONLY(column, "derived column 'abs'"),
      );
      expect(() => deriveColumns(source, r, 'here')).toThrow(READ_ONLY(column, "derived column 'abs'"));
      expect(r).toEqual(row(-2));
    }
  });

  it('fails the same way when the filter changes its row, derived columns included', () => {
    const source = payments(undefined, (r) => {
      r.double_cents = 0;
      return true;
    });
    expect(() => deriveAndFilter(source, row(1), 'here')).toThrow(READ_ONLY('double_cents', 'the filter'));
  });

  it('still reports other errors as the function throwing', () => {
    const source = payments({
      bad: { type: col.float(), fn: (r) => (r.user as string).length },
    });
    const r = { ...row(1), user: null };
    expect(() => deriveAndFilter(source, r, 'here')).toThrow(
      /^source 'payments', derived column 'bad' threw at here: Cannot read properties of null/,
    );
  });

  it('re-keys at ingest from derived columns without changing the logged event', () => {
    const source = payments({ bucket: { type: col.string(), fn: (r) => `b${r.amount}` } });
    const [topic] = streamTopics(
      source,
      [
        groupBy({
          name: 'by_bucket',
          source,
          keys: ['bucket'],
          aggregations: [sum('amount', { windows: ['1h'] })],
        }),
      ],
      2,
    );
    const event = row(3);
    expect(partitionKeyOf(topic, event)).toBe('b3');
    expect(event).toEqual(row(3));
  });
});

describe('stream worker', () => {
  async function drainInto(source: SourceDef, amounts: number[]) {
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: `${d.path}/store` });
    const log = openFileLog(`${d.path}/log`);
    const byUser = groupBy({
      name: 'by_user',
      source,
      keys: ['user'],
      aggregations: [
        sum('amount', { windows: ['lifetime'] }),
        sum('double_cents', { windows: ['lifetime'] }),
      ],
    });
    const [topic] = streamTopics(source, [byUser], 1);
    await ingestEvents(
      log,
      source,
      [byUser],
      amounts.map((amount, i) => ({ user: 'u1', amount, ts: T0 + i * 1000 })),
    );
    let commits = 0;
    const worker = await createStreamWorker({ log, store, topic, partition: 0, onCommit: () => commits++ });
    const drained = worker.drain().then(
      () => null,
      (e: Error) => e,
    );
    const error = await drained;
    const [[user]] = await createFetchGroupBys(store)(
      [{ id: groupById(byUser), groupBy: byUser, keys: ['u1'] }],
      T0 + 86_400_000,
    );
    const offset = (await store.readOffsets(['stream/payments/0']))['stream/payments/0'] ?? null;
    await log.close();
    await store.close();
    return { error, commits, offset, user };
  }

  it('applies derived columns that read earlier ones, and the filter on them', async () => {
    const { error, commits, user } = await drainInto(payments(), [1, -2, 3.5]);
    expect(error).toBeNull();
    expect(commits).toBe(1);
    expect(user.values).toEqual([[4.5], [900]]);
  });

  it('fails the batch, committing nothing, when a derived column changes its row', async () => {
    const source = payments({
      cents: { type: col.float(), fn: (r) => (r.amount as number) * 100 },
      abs: {
        type: col.float(),
        fn: (r) => {
          if ((r.amount as number) < 0) r.amount = Math.abs(r.amount as number);
          return 1;
        },
      },
      double_cents: { type: col.float(), fn: (r) => (r.cents as number) * 2 },
    });
    const { error, commits, offset, user } = await drainInto(source, [1, -2, 3.5]);
    expect(error?.message).toMatch(
      /^source 'payments': a derived column or the filter assigned 'amount' of its input row; rows are read-only: add the value as a derived column instead \(derived column 'abs', at topic 'payments' partition 0 offset 1\)$/,
    );
    expect([commits, offset, user.status]).toEqual([0, null, 'missing_key']);
  });

  it('fails the batch, committing nothing, when the filter changes its row', async () => {
    const source = payments(undefined, (r) => {
      r.amount = Math.abs(r.amount as number);
      return true;
    });
    const { error, commits, offset, user } = await drainInto(source, [1, -2, 3.5]);
    expect(error?.message).toMatch(
      /assigned 'amount' of its input row; rows are read-only: .* \(the filter, at topic 'payments' partition 0 offset 0\)$/,
    );
    expect([commits, offset, user.status]).toEqual([0, null, 'missing_key']);
  });
});
