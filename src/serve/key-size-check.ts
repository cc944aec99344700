import type { GroupByDef, Scalar, SourceDef } from '../define/types.ts';
import { entityKey } from '../online/entity-key.ts';
import { MAX_KEY_BYTES } from '../online/lmdb-store.ts';
import { entityKeyRoom } from '../online/store.ts';
import type { EventIssue } from '../online/validate-event.ts';

/** lmdb's maximum key size in bytes (the LMDB store keys a value by `entity key + "\0" + store id`). */
export const LMDB_MAX_KEY_BYTES = MAX_KEY_BYTES;

/**
 * Events whose entity key could never be written to the LMDB store, as ingest issues.
 *
 * Ingest refuses them, so the producer learns at once: once in the log, such an event can only be
 * counted and skipped by its worker (`keyTooLong`, worker.ts invariant 10), although its append was
 * acknowledged. Only key columns of the source schema are checked (a derived key is computed by the worker,
 * which counts it the same way).
 *
 * @example
 * oversizeKeyIssues(charges, groupBys, [{ card_id: 'c'.repeat(5000), ... }], groupById, 'request body');
 * // [{ row: 0, column: 'card_id', message: "key of group-by 'card_velocity' is 5020 bytes ...", fix: ... }]
 */
export function oversizeKeyIssues(
  source: SourceDef,
  groupBys: readonly GroupByDef[],
  events: readonly unknown[],
  groupById: (g: GroupByDef) => string,
  origin: string,
  maxBytes = LMDB_MAX_KEY_BYTES,
): EventIssue[] {
  const plan = keySizePlan(source, groupBys, groupById, maxBytes);
  if (plan === null) return [];
  const { checks, columns, minRoom } = plan;
  const issues: EventIssue[] = [];
  for (let row = 0; row < events.length; row++) {
    const raw = events[row];
    if (raw === null || typeof raw !== 'object') continue; // not an event: validation reports it
    const event = raw as Record<string, unknown>;
    let all = columns.length;
    for (const c of columns) {
      const v = event[c];
      all += typeof v === 'string' ? v.length : 24;
    }
    if (all * 3 <= minRoom) continue;
    for (const { g, room } of checks) {
      const values = g.keys.map((k) => event[k]);
      let units = g.keys.length;
      for (const v of values) units += typeof v === 'string' ? v.length : 24;
      if (units * 3 <= room) continue;
      if (values.some((v) => v !== null && v !== undefined && typeof v === 'object')) continue; // bad input, reported by validation
      const key = entityKey(values as (Scalar | null | undefined)[]);
      if (key === null) continue;
      const bytes = Buffer.byteLength(key);
      if (bytes <= room) continue;
      const longest = g.keys.reduce((a, k, i) =>
        String(values[i]).length > String(event[a]).length ? k : a,
      );
      issues.push({
        source: source.name,
        origin,
        row,
        column: longest,
        message: `the key of group-by '${g.name}' is ${bytes} bytes, more than the LMDB store's ${room} for it`,
        fix: `Send shorter key values (e.g. a hash of '${longest}'), or run on the Redis store (--store redis).`,
      });
      break;
    }
  }
  return issues;
}

/**
 * What `oversizeKeyIssues` checks: the group-bys of the source keyed by schema columns, each with its room,
 * and its fast path per event: when all key columns together, at most 3 UTF-8 bytes per UTF-16 unit (or 24
 * per value not a string), fit `minRoom`, no key of any group-by can be too long (~0.15 us/event on the
 * fraud example). Null when no key needs checking. Replay (replay-file.ts) runs the same bound in SQL.
 */
export function keySizePlan(
  source: SourceDef,
  groupBys: readonly GroupByDef[],
  groupById: (g: GroupByDef) => string,
  maxBytes = LMDB_MAX_KEY_BYTES,
): {
  readonly checks: readonly { readonly g: GroupByDef; readonly room: number }[];
  readonly columns: readonly string[];
  readonly minRoom: number;
} | null {
  const checks = groupBys
    .filter((g) => g.source.name === source.name && g.keys.every((k) => k in source.schema))
    .map((g) => ({ g, room: entityKeyRoom(maxBytes, groupById(g)) }));
  if (checks.length === 0) return null;
  const columns = [...new Set(checks.flatMap((c) => c.g.keys))];
  return { checks, columns, minRoom: Math.min(...checks.map((c) => c.room)) };
}
