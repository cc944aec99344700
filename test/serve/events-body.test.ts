import { describe, expect, it } from 'vitest';
import { MAX_EVENTS, parseEventsBody } from '../../src/serve/request-schema.ts';

/** `POST /v1/events/:source` body errors say what to send, as the feature routes' do (not zod's wording). */
describe('parseEventsBody', () => {
  const event = { user: 'u1', ts: 1 };

  it('accepts { events } and a bare array', () => {
    expect(parseEventsBody({ events: [event] })).toEqual({ ok: true, events: [event] });
    expect(parseEventsBody([event, event])).toEqual({ ok: true, events: [event, event] });
  });

  it.each([
    [
      'an oversize batch',
      { events: Array(MAX_EVENTS + 1).fill(event) },
      'at most 100000 events per request; split the batch',
    ],
    ['an empty batch', { events: [] }, 'send at least one event'],
    [
      'a misspelt events field',
      { evnts: [event] },
      'expected "events": an array of 1 to 100000 event objects',
    ],
    [
      'events that are not objects',
      { events: [event, 5] },
      '[1]: expected an event: an object of column values',
    ],
  ])('names the fix for %s', (_name, body, message) => {
    const r = parseEventsBody(body);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toContain(message);
  });
});
