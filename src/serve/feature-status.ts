/**
 * Status of one served feature value:
 * - `ok`: computed from the stored tiles;
 * - `missing_key`: the entity has no tiles (or the key value is null), so the value is the empty-window
 *   value of DESIGN §1 (0, {}, or null), exactly what the backfill returns for a key with no events;
 * - `stale`: the source's stream workers are behind (log events appended but not applied for longer than
 *   the staleness threshold), so the value may miss recent events;
 * - `inexact`: `at` is before the entity's exact-from time (older tiles were compacted away; see the
 *   README's "exactness of historical fetches"), so there is no exact online value: it is null.
 */
export type FeatureStatus = 'ok' | 'missing_key' | 'stale' | 'inexact';

export type { GroupValues } from '../online/fetch-group-bys.ts';
