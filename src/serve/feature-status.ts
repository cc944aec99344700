/**
 * Status of one served feature value:
 * - `ok`: computed from the stored tiles;
 * - `missing_key`: the entity has no tiles (or the key value is null), so the value is the empty-window
 *   value of DESIGN §1 (0, {}, or null), exactly what the backfill returns for a key with no events;
 * - `stale`: the source's stream workers are behind (log events appended but not applied for longer than
 *   the staleness threshold), so the value may miss recent events.
 */
export type FeatureStatus = 'ok' | 'missing_key' | 'stale';

export type { GroupValues } from '../online/fetch-group-bys.ts';
