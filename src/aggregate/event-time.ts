/**
 * Event-time parsing shared by offline reading and online ingest (DESIGN §1 "Events and time"): every
 * source time becomes integer epoch milliseconds UTC exactly once, at read time, by this one function.
 */

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Decimal number text: optional '-', digits with an optional fraction, optional exponent. */
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function parseIso(text: string): number | null {
  const m = ISO.exec(text.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const year = +y;
  const month = +mo;
  const day = +d;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  if (month < 1 || month > 12 || day < 1 || day > (month === 2 && !leap ? 28 : DAYS_IN_MONTH[month - 1]))
    return null;
  if (+h > 23 || +mi > 59 || +s > 59) return null;
  // Sub-millisecond digits are truncated (floor for non-negative times), never rounded up into the next ms.
  const ms = frac === '' ? 0 : +(frac + '00').slice(0, 3);
  let offsetMin = 0;
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offsetMin = sign * (+digits.slice(0, 2) * 60 + (digits.length > 2 ? +digits.slice(2) : 0));
  }
  // No zone means UTC (never the machine's local time zone), so results do not depend on TZ.
  const date = new Date(Date.UTC(2000, month - 1, day, +h, +mi, +s, ms));
  date.setUTCFullYear(year); // Date.UTC maps years 0..99 to 1900..1999; set the year as written
  return date.getTime() - offsetMin * 60_000;
}

/**
 * Converts a source time value to epoch ms, or returns null when it is null or cannot be parsed (callers
 * report that as bad input naming source, file/offset, row and column).
 *
 * Accepts integer epoch-ms numbers (or bigints, or number text whose value is a whole number:
 * `1704067200000`, `1704067200000.0`, `1.7040672e12`; `1.5` is rejected), `Date`s, and ISO-8601 text
 * (`2024-05-01T12:00:00.123Z`, `2024-05-01 12:00:00+02:00`, `2024-05-01`; no zone means UTC).
 *
 * @example
 * parseEventTime(1714564800000);              // 1714564800000
 * parseEventTime('2024-05-01T12:00:00Z');     // 1714564800000
 * parseEventTime('2024-05-01 14:00:00+02:00') // 1714564800000
 * parseEventTime('yesterday');                // null
 */
export function parseEventTime(value: unknown): number | null {
  switch (typeof value) {
    case 'number':
      return Number.isSafeInteger(value) ? value : null;
    case 'bigint': {
      const n = Number(value);
      return Number.isSafeInteger(n) ? n : null;
    }
    case 'string': {
      // A number as text is epoch ms when its value is a whole number: `1704067200000`, and as exported by
      // pandas or written by JSON encoders `1704067200000.0` or `1.7040672e12` (a JSON number that is a
      // whole number is an integer in JS too). ISO dates never match: they have '-' after the year digits.
      if (NUMBER.test(value)) {
        const n = Number(value);
        return Number.isSafeInteger(n) ? n : null;
      }
      return parseIso(value);
    }
    case 'object': {
      if (value instanceof Date) {
        const n = value.getTime();
        return Number.isNaN(n) ? null : n;
      }
      return null;
    }
    default:
      return null;
  }
}
