import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventValidationError, ingestEvents } from '../../src/online/ingest.ts';
import { logEventCheck } from '../../src/online/log-event-check.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { closestName } from '../../src/define/closest-name.ts';
import { MAX_EXTRA_FIELDS, validateEvent } from '../../src/online/validate-event.ts';
import { events, groupBys, tempDir } from './fixtures.ts';

/**
 * Fields that are not schema columns: HTTP ingest rejects them (a typo of a nullable column stored null
 * silently; a derived column was dropped and recomputed), while log records and replay files drop them.
 */
const dir = tempDir();
afterAll(() => dir.remove());
const good = { user: 'u1', kind: 'a', amount: 1.5, ts: 1000 };

describe("validateEvent with unknownColumns: 'reject'", () => {
  it('names the closest schema column for a typo of a nullable column', () => {
    const r = validateEvent(events, { user: 'u1', kidn: 'a', ts: 1000 }, 3, 'request body', 'reject');
    expect(r.issues).toEqual([
      {
        source: 'events',
        origin: 'request body',
        row: 3,
        column: 'kidn',
        message: "unknown column 'kidn': source 'events' has no such column",
        fix: "Did you mean 'kind'? Rename the field, or remove it.",
      },
    ]);
  });

  it('says a derived column is computed, not sent', () => {
    const r = validateEvent(events, { ...good, cents: 150 }, 0, 'request body', 'reject');
    expect(r.issues?.map((i) => [i.column, i.message, i.fix])).toEqual([
      [
        'cents',
        "'cents' is a derived column: Tessera computes it from the event's schema columns (the source's derive), so it cannot be sent",
        "Remove 'cents' from the event.",
      ],
    ]);
  });

  it('lists the schema columns for a field close to none, after the other issues of the event', () => {
    const r = validateEvent(events, { user: 'u1', ts: 'soon', bogus: 1 }, 0, 'request body', 'reject');
    expect(r.issues?.map((i) => i.column)).toEqual(['ts', 'bogus']);
    expect(r.issues?.[1]!.fix).toBe(
      "Remove it, or add it to the source schema; its columns are 'user', 'kind', 'amount', 'ts'.",
    );
  });

  it('does not suggest a column the event carries already', () => {
    const r = validateEvent(events, { ...good, kinds: 'b' }, 0, 'request body', 'reject');
    expect(r.issues?.[0]!.fix).toMatch(/^Remove it, or add it to the source schema/);
  });

  it('accepts an event of schema columns only, as the default mode does', () => {
    expect(validateEvent(events, good, 0, 'request body', 'reject')).toEqual({ row: good });
    expect(validateEvent(events, { ...good, bogus: 1 }, 0, 'request body')).toEqual({ row: good });
    // A field set to undefined (a JS caller's) is absent, as in the default mode.
    expect(validateEvent(events, { ...good, kind: undefined }, 0, 'request body', 'reject')).toEqual({
      row: { ...good, kind: null },
    });
  });
});

/** A client controls how many fields an event has and how long their names are: the work and the answer are bounded. */
describe("validateEvent with unknownColumns: 'reject': bounded work and answer", () => {
  const strays = (n: number, prefix = 'stray_') =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 1]));

  it('builds no issue past the budget it is given, but counts them all', () => {
    expect(validateEvent(events, { ...good, ...strays(3) }, 0, 'request body', 'reject', 0)).toEqual({
      issues: [],
      issueCount: 3,
    });
    const r = validateEvent(events, { user: 'u1', ts: 'soon', ...strays(3) }, 0, 'request body', 'reject', 2);
    expect(r.issues?.map((i) => i.column)).toEqual(['ts', 'stray_0']);
    expect(r.issueCount).toBe(4);
    expect(validateEvent(events, 5, 0, 'request body', 'reject', 0)).toEqual({ issues: [], issueCount: 1 });
  });

  it(`gives an event with more than ${MAX_EXTRA_FIELDS} fields beyond the source's columns one issue`, () => {
    // 4 schema columns + 1 derived + 32: one issue per stray field up to there.
    const atLimit = validateEvent(events, { ...good, ...strays(33) }, 0, 'request body', 'reject');
    expect(atLimit.issueCount).toBe(33);
    const r = validateEvent(events, { ...good, ...strays(100_000) }, 7, 'request body', 'reject');
    expect(r.issueCount).toBe(1);
    expect(r.issues).toEqual([
      {
        source: 'events',
        origin: 'request body',
        row: 7,
        column: null,
        message:
          "event has 100004 fields, more than 32 beyond the 4 columns of source 'events' (and its 1 derived columns, computed, not sent); its fields were not checked one by one",
        fix: "Send only the source's columns: 'user', 'kind', 'amount', 'ts'.",
      },
    ]);
  });

  it('cuts a long field name to 60 characters in the issue', () => {
    const name = 'x'.repeat(1_000_000);
    const r = validateEvent(events, { ...good, [name]: 1 }, 0, 'request body', 'reject');
    expect(r.issues?.[0]!.column).toBe(`${'x'.repeat(60)}…`);
    expect(r.issues?.[0]!.message).toBe(
      `unknown column '${'x'.repeat(60)}…': source 'events' has no such column`,
    );
    expect(JSON.stringify(r.issues).length).toBeLessThan(500);
  });

  it('ingestEvents lists the first 20 issues of a batch and counts the rest', async () => {
    const log = openFileLog(join(dir.path, 'budget'));
    const batch = Array.from({ length: 100 }, () => ({ ...good, ...strays(30) }));
    const err = (await ingestEvents(log, events, groupBys, batch, { unknownColumns: 'reject' }).catch(
      (e: unknown) => e,
    )) as EventValidationError;
    expect(err.issues).toHaveLength(20);
    expect(err.issueCount).toBe(3000);
    expect(err.badRows).toBe(100);
    await log.close();
  });
});

describe('closestName', () => {
  it.each([
    ['ipp', ['ip', 'amount'], 'ip'],
    ['Amount', ['ip', 'amount'], 'amount'],
    ['amuont', ['ip', 'amount'], 'amount'],
    ['cardid', ['card_id', 'merchant_id'], 'card_id'],
    ['merchnt_di', ['card_id', 'merchant_id'], 'merchant_id'],
    ['bogus', ['ip', 'amount', 'ts'], null],
    ['timestamp', ['ts'], null],
  ])('%s among %j → %s', (name, candidates, expected) => {
    expect(closestName(name, candidates)).toBe(expected);
  });
});

describe('ingestEvents', () => {
  it("with unknownColumns 'reject' rejects the batch whole and appends nothing", async () => {
    const log = openFileLog(join(dir.path, 'reject'));
    const err = await ingestEvents(log, events, groupBys, [good, { ...good, amout: 2 }], {
      origin: 'request body',
      unknownColumns: 'reject',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventValidationError);
    expect((err as EventValidationError).issues.map((i) => `${i.row}:${i.column}`)).toEqual(['1:amout']);
    expect(await log.endOffsets('events')).toEqual([0]);
    await log.close();
  });

  it('drops unknown fields by default (stream replay files), as the stream worker does for log records', async () => {
    const log = openFileLog(join(dir.path, 'drop'));
    const res = await ingestEvents(log, events, groupBys, [{ ...good, bogus: 1, cents: 150 }]);
    expect(res.accepted).toBe(1);
    expect((await log.read('events', 0, 0, 10)).map((r) => r.event)).toEqual([good]);
    await log.close();
    // A log record written by another producer with extra fields stays valid for the worker.
    expect(logEventCheck(events)({ ...good, ts: '1970-01-01T00:00:01Z', bogus: 1 }, 7)).toBeNull();
  });

  it('says how many issues there are in all when it lists only the first ones', async () => {
    const log = openFileLog(join(dir.path, 'many'));
    const batch = Array.from({ length: 30 }, () => ({ user: 'u1', ts: 'soon', amount: 'x' }));
    const err = (await ingestEvents(log, events, groupBys, batch, { maxIssues: 20 }).catch(
      (e: unknown) => e,
    )) as EventValidationError;
    expect(err.issues).toHaveLength(20);
    expect(err.issueCount).toBe(60);
    expect(err.message).toMatch(
      /^30 invalid event\(s\); nothing was appended; the first 20 of 60 issues are listed:\n/,
    );
    expect(err.message).toMatch(/\n {2}… and 40 more issue\(s\): fix these and resend to see them$/);
    await log.close();
  });
});
