/**
 * The common shapes of text times converted in SQL (vectorised), to the same epoch ms as the shared
 * `parseEventTime` (aggregate/event-time.ts): plain ISO-8601 (no surrounding or inner whitespace) and whole
 * numbers of up to 15 digits, optionally with a `.0` fraction. Any other text gets NULL here and is left to
 * `parseEventTime` (which may accept it, e.g. with whitespace, or refuse it), so SQL never decides that a
 * time is bad. Calendar arithmetic is in integers (days from the civil date), exact for every year the
 * pattern allows (0000-9999), as is `parseEventTime`'s `Date` arithmetic there.
 */

/** `parseEventTime`'s ISO pattern less its whitespace (RE2 syntax; `\d` is ASCII there as in JS). */
const ISO_RE =
  '^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?$';
const PART_NAMES = ['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'z'] as const;

/** Whole-number text exact in a double, as `Number()` reads it; not `-0` (JS keeps its sign, BIGINT not). */
const WHOLE_RE = '^(-?[1-9][0-9]{0,14}|0)(\\.0+)?$';

/**
 * A struct of the ISO parts of VARCHAR expression `x` (fields y, mo, d, h, mi, s, f, z; all '' when the
 * pattern does not match), to compute once per row in a subquery and pass to `textTimeMsSql`.
 */
export function isoPartsSql(x: string): string {
  return `regexp_extract(${x}, '${ISO_RE}', [${PART_NAMES.map((n) => `'${n}'`).join(', ')}])`;
}

/**
 * DOUBLE epoch ms of VARCHAR expression `x` (with `p` its `isoPartsSql` struct) where the SQL fast path
 * applies and the text is a valid time, else NULL (left to `parseEventTime`).
 *
 * @example
 * `SELECT ${textTimeMsSql('t', 'p')} FROM (SELECT t, ${isoPartsSql('t')} AS p FROM texts)`
 */
export function textTimeMsSql(x: string, p: string): string {
  const num = (field: string) => `TRY_CAST(${p}.${field} AS BIGINT)`;
  const opt = (field: string) => `(CASE WHEN ${p}.${field} = '' THEN 0 ELSE ${num(field)} END)`;
  const y = num('y');
  const mo = num('mo');
  const d = num('d');
  const leap = `(${y} % 4 = 0 AND ${y} % 100 <> 0 OR ${y} % 400 = 0)`;
  const monthDays = `[31, CASE WHEN ${leap} THEN 29 ELSE 28 END, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][${mo}]`;
  const valid = `${mo} BETWEEN 1 AND 12 AND ${d} >= 1 AND ${d} <= ${monthDays} AND ${opt('h')} <= 23 AND ${opt('mi')} <= 59 AND ${opt('s')} <= 59`;
  // Days from 1970-01-01 of the proleptic Gregorian date (March-based years, shifted by 400 years so that
  // every operand of // and % is non-negative).
  const yp = `(${y} - CASE WHEN ${mo} <= 2 THEN 1 ELSE 0 END + 400)`;
  const era = `(${yp} // 400)`;
  const yoe = `(${yp} - ${era} * 400)`;
  const doy = `((153 * ((${mo} + 9) % 12) + 2) // 5 + ${d} - 1)`;
  const days = `(${era} * 146097 + ${yoe} * 365 + ${yoe} // 4 - ${yoe} // 100 + ${doy} - 719468 - 146097)`;
  // As `parseEventTime`: the first three fraction digits (sub-ms digits dropped), the zone's offset in minutes.
  const ms = `(CASE WHEN ${p}.f = '' THEN 0 ELSE CAST(left(${p}.f || '00', 3) AS BIGINT) END)`;
  const zone = `replace(substr(${p}.z, 2), ':', '')`;
  const offset =
    `(CASE WHEN ${p}.z = '' OR upper(${p}.z) = 'Z' THEN 0 ELSE ` +
    `(CASE WHEN left(${p}.z, 1) = '-' THEN -1 ELSE 1 END) * ` +
    `(CAST(left(${zone}, 2) AS BIGINT) * 60 + CASE WHEN length(${zone}) > 2 THEN CAST(substr(${zone}, 3) AS BIGINT) ELSE 0 END) END)`;
  const iso = `${days} * 86400000 + ${opt('h')} * 3600000 + ${opt('mi')} * 60000 + ${opt('s')} * 1000 + ${ms} - ${offset} * 60000`;
  return (
    `(CASE WHEN regexp_full_match(${x}, '${WHOLE_RE}') THEN CAST(CAST(split_part(${x}, '.', 1) AS BIGINT) AS DOUBLE) ` +
    `WHEN ${p}.y <> '' THEN (CASE WHEN ${valid} THEN CAST(${iso} AS DOUBLE) END) END)`
  );
}
