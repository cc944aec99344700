/** Helpers shared by the NATS and Kafka end-to-end tests: ingest the fixtures' events, read back values. */
import type { Row } from '../../src/define/types.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { byUser, byUserKind, events, groupBys } from './fixtures.ts';

/** Appends `all` (validated, as HTTP ingest does) in batches of `batch`. */
export async function ingestAll(log: EventLog, all: readonly Row[], batch: number): Promise<void> {
  for (let i = 0; i < all.length; i += batch)
    await ingestEvents(log, events, groupBys, all.slice(i, i + batch));
}

/** Every feature value of both fixture group-bys for the events' keys, at three times after the last event. */
export async function snapshot(store: OnlineStore, all: readonly Row[]): Promise<unknown> {
  const users = [...new Set(all.map((e) => e.user as string))];
  const pairs = [
    ...new Set(all.filter((e) => typeof e.kind === 'string').map((e) => `${e.user}\u001f${e.kind}`)),
  ];
  const req = [
    { id: groupById(byUser), groupBy: byUser, keys: users },
    { id: groupById(byUserKind), groupBy: byUserKind, keys: pairs },
  ];
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const out = [];
  for (const at of [t, t + 600_000, t + 86_400_000])
    out.push((await createFetchGroupBys(store)(req, at)).map((g) => g.map((v) => v.values)));
  return out;
}
