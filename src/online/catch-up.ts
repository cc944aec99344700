import type { GroupByDef } from '../define/types.ts';
import type { EventLog, LogRecord } from './log/event-log.ts';
import {
  catchUpOffsetName,
  catchUpPrefix,
  formatMembers,
  halfPrunedError,
  logStartName,
  membersName,
  missingHistoryOf,
  parseMembers,
  pruneMarkerName,
} from './members.ts';
import type { OnlineStore } from './store.ts';
import type { Topic } from './topics.ts';
import {
  createStreamWorker,
  offsetName,
  uploadCutoffName,
  watermarkName,
  type CatchingUp,
  type CommitInfo,
  type MissingHistory,
  type WorkerOptions,
} from './worker.ts';

/**
 * Backfill on deploy: a group-by that is new to a topic partition (a changed definition is a new store id,
 * group-by-id.ts) gets the events of the log that the partition's worker already applied to the others.
 *
 * Invariants (members.ts describes the stored entries):
 * 1. The partition's main worker applies nothing until its members entry lists every store id of its
 *    topic, so its committed offset O stays put while new ids catch up: no hand-off race, and every member
 *    has had exactly the events below O applied. Its commits also expect that entry (worker.ts `fenceOn`):
 *    a process with other definitions whose catch-up changed the entry took the partition over, and a
 *    worker of this one applying more events would leave them out of the other's new ids, so it is fenced.
 * 2. A new id is caught up by a stream worker of its own (worker.ts, the same code and rules: upload
 *    cutoff, lateness, retention) over the log's offsets [its progress, O), committing its progress under
 *    `catchup/<id>/` with its tiles, so a crash resumes from its last commit, without double counts. It then
 *    joins the members in a commit fenced on the partition's offset and members entry.
 * 3. A member dropped from the topic is retired by the last members commit, which removes it from the
 *    members and sets its catch-up progress to O: its tiles hold the events below O, so re-adding it (a
 *    rollback) catches up from there (from 0 once `tessera prune` deleted its tiles and progress, prune.ts).
 * 4. A partition with no members entry: O = 0, nothing applied, every id is a member; O > 0, a store from
 *    before members (legacy): every current id is taken as a member (no group-by changed during the
 *    upgrade; catching up there would count the events twice).
 * 5. A log that no longer holds the first offsets (retention) cannot give them back: the catch-up says so
 *    loudly; those events are missing from the new id unless an upload (`tessera upload --until`) covered them.
 * 6. A topic newer than its source's history (`--partitions` > 1: a key list no group-by used before gets a
 *    topic `<source>.<keys>` holding only events ingested since) has no
 *    earlier events to catch up on. Its first worker detects it (`topicIsNewer`: no topic partition of it
 *    applied anything, no members entry here, and another topic of the source applied more events than its
 *    log holds, or, on an empty store, its log is empty while another's is not) and records it
 *    (`logstart/`, members.ts) with its first members entry. Its group-bys without an upload cutoff are
 *    then reported missing history (a loud warning at every start, `missingHistory` in stats and progress),
 *    not `stale`: features of windows shorter than the time since are complete, and a group-by added on
 *    purpose to count from now on must not be stale forever. A partition starting after another of its
 *    topic takes that one's verdict; a gap must still be there 2 s later (appends to a source's topics are
 *    not atomic on NATS, Kafka, a Cluster). Not detected: a key list used again after none did (its topic
 *    has members and offsets from before, and misses the events ingested while it was unused).
 */

/** What a partition's catch-up has to do, read when its workers open (`planCatchUp`). */
export interface CatchUpPlan {
  readonly topic: Topic;
  readonly partition: number;
  /** The partition's committed offset: the end of every catch-up. */
  readonly target: number;
  /** The stored partition offset and members entry as read, which the membership commits expect. */
  readonly storedOffset: string | null;
  readonly storedMembers: string | null;
  readonly storedWatermark: string | null;
  /** The members after the first commit: the stored ones still in the topic (all current ids if none). */
  readonly members: readonly string[];
  /** Stored members no longer in the topic (invariant 3). */
  readonly retired: readonly string[];
  /** Store ids to catch up, in topic order, with their progress. */
  readonly pending: readonly {
    readonly id: string;
    readonly groupBys: readonly GroupByDef[];
    from: number;
  }[];
  /** The store predates members (invariant 4) and its partition has applied events. */
  readonly legacy: boolean;
  /** The members entry once the catch-up is done (every id of the topic), which the main worker expects. */
  readonly joined: string;
  /** A `logstart/` entry to write with the first members commit: the topic was just found new (invariant 6). */
  readonly newLogStart: string | null;
  /** Group-bys missing the source's events before the topic's log started (invariant 6); null: none. */
  readonly missingHistory: MissingHistory | null;
}

/**
 * Reads a topic partition's members and catch-up progress and plans its catch-up.
 *
 * @example
 * const plan = await planCatchUp(store, topic, 0, groupById);
 * plan.pending.map((p) => p.id); // store ids new to the partition
 */
export async function planCatchUp(
  store: OnlineStore,
  topic: Topic,
  partition: number,
  idOf: (g: GroupByDef) => string,
  /** To detect a topic newer than its source's history (invariant 6): the log, and the source's topics. */
  history?: { readonly log: EventLog; readonly topics: readonly string[] },
): Promise<CatchUpPlan> {
  const ids = [...new Set(topic.groupBys.map(idOf))];
  const names = {
    offset: offsetName(topic.name, partition),
    watermark: watermarkName(topic.name, partition),
    members: membersName(topic.name, partition),
    logStart: logStartName(topic.name, partition),
  };
  const saved = await store.readOffsets([
    ...Object.values(names),
    ...ids.map((id) => catchUpOffsetName(id, topic.name, partition)),
    ...ids.map(uploadCutoffName),
    ...ids.map(pruneMarkerName),
  ]);
  const halfPruned = ids.filter((id) => saved[pruneMarkerName(id)] !== undefined);
  if (halfPruned.length > 0) throw halfPrunedError(`stream worker ${topic.name}/${partition}`, halfPruned);
  const target = saved[names.offset] === undefined ? 0 : Number(saved[names.offset]);
  const stored = parseMembers(saved[names.members]);
  const unstarted =
    history !== undefined &&
    topic.keyColumns !== null &&
    stored === null &&
    target === 0 &&
    saved[names.logStart] === undefined;
  const newLogStart = unstarted
    ? // A partition starting after another of its topic (--owned nodes) takes the verdict that one recorded.
      ((await siblingLogStart(store, topic.name)) ??
      ((await topicIsNewer(store, history.log, topic, history.topics)) ? String(Date.now()) : null))
    : null;
  const base = {
    topic,
    partition,
    target,
    storedOffset: saved[names.offset] ?? null,
    storedMembers: saved[names.members] ?? null,
    storedWatermark: saved[names.watermark] ?? null,
    joined: formatMembers(ids),
    newLogStart,
    missingHistory: missingHistoryOf(
      topic.groupBys,
      saved[names.logStart] ?? newLogStart ?? undefined,
      saved,
      idOf,
    ),
  };
  if (stored === null || target === 0)
    return {
      ...base,
      members: ids,
      retired: stored?.filter((id) => !ids.includes(id)) ?? [],
      pending: [],
      legacy: stored === null && target > 0,
    };
  return {
    ...base,
    members: stored.filter((id) => ids.includes(id)),
    retired: stored.filter((id) => !ids.includes(id)),
    pending: ids
      .filter((id) => !stored.includes(id))
      .map((id) => ({
        id,
        groupBys: topic.groupBys.filter((g) => idOf(g) === id),
        from: Number(saved[catchUpOffsetName(id, topic.name, partition)] ?? 0),
      })),
    legacy: false,
  };
}

/** The `logstart/` entry another partition of `topic` recorded, if any (the earliest). */
async function siblingLogStart(store: OnlineStore, topic: string): Promise<string | null> {
  const prefix = `logstart/${topic}/`;
  const found = Object.entries(await store.readOffsets())
    .filter(([name]) => name.startsWith(prefix))
    .map(([, value]) => value)
    .sort((a, b) => Number(a) - Number(b));
  return found[0] ?? null;
}

/**
 * Whether `topic` (not yet applied by any worker) is newer than its source's history (invariant 6): another
 * topic of the source (`topics`, or one the store has offsets of) committed more events than `topic`'s log
 * holds, or none committed any and its log is empty while another's is not.
 */
async function topicIsNewer(
  store: OnlineStore,
  log: EventLog,
  topic: Topic,
  topics: readonly string[],
  recheckMs = 2000,
): Promise<boolean> {
  const sum = (ends: readonly number[]) => ends.reduce((a, b) => a + b, 0);
  /** The most events another topic of the source committed, and this topic's log length; null if it applied any. */
  const measure = async (): Promise<{ most: number; held: number } | null> => {
    const committed = new Map<string, number>(topics.map((t) => [t, 0]));
    const prefix = `stream/${topic.source.name}.`;
    for (const [name, value] of Object.entries(await store.readOffsets())) {
      if (!name.startsWith(prefix)) continue;
      const t = name.slice('stream/'.length, name.lastIndexOf('/'));
      committed.set(t, (committed.get(t) ?? 0) + Number(value));
    }
    // A topic that applied events is not new, whatever this partition (legacy, or one no key hashes to).
    if ((committed.get(topic.name) ?? 0) > 0) return null;
    committed.delete(topic.name);
    return { most: Math.max(0, ...committed.values()), held: sum(await log.endOffsets(topic.name)) };
  };
  const first = await measure();
  if (first === null) return false;
  if (first.most > 0) {
    if (first.most <= first.held) return false;
    // Appends to a source's topics are not atomic on NATS, Kafka and a Redis Cluster: a batch may be in one
    // topic (and committed there) before it reaches this one. Such a gap closes within moments; the gap of
    // a topic that never got the history stays, so it must still be there a little later.
    await new Promise((r) => setTimeout(r, recheckMs));
    const again = await measure();
    return again !== null && again.most > again.held;
  }
  if (first.held > 0) return false;
  // Nothing committed yet (a first start): the others hold events and this topic none, here too for a while.
  const othersHold = async () => {
    for (const t of topics) if (t !== topic.name && sum(await log.endOffsets(t)) > 0) return true;
    return false;
  };
  if (!(await othersHold())) return false;
  await new Promise((r) => setTimeout(r, recheckMs));
  return sum(await log.endOffsets(topic.name)) === 0 && (await othersHold());
}

/** The ids of `plan` still catching up, as `WorkerStats.catchingUp` reports them. */
export function catchingUpOf(plan: CatchUpPlan): CatchingUp[] {
  return plan.pending.map((p) => ({
    id: p.id,
    groupBys: p.groupBys.map((g) => g.name),
    nextOffset: Math.min(p.from, plan.target),
    target: plan.target,
  }));
}

/** Whether `plan` needs a store write before the main worker may apply events. */
export function catchUpNeeded(plan: CatchUpPlan): boolean {
  return plan.storedMembers !== plan.joined;
}

/** How often a catch-up logs its progress. */
const PROGRESS_EVERY_MS = 5000;

/**
 * Carries out `plan` (invariants 1-5): the members commit, then each pending id's catch-up and its joining
 * the members. `mode: 'run'` retries failed batches until `signal` aborts (then resolves false);
 * `'drain'` throws the first failure. Resolves true once the members entry lists every id of the topic.
 * Rejects when the partition turns out to have another writer (`fenced:`), or its log ends before the
 * committed offset.
 */
export async function runCatchUp(opts: {
  readonly plan: CatchUpPlan;
  readonly log: EventLog;
  readonly store: OnlineStore;
  readonly groupById: (g: GroupByDef) => string;
  readonly mode: 'run' | 'drain';
  readonly signal?: AbortSignal;
  /** Options of the catch-up workers (batch size, retention...); their state names are their own. */
  readonly worker?: Omit<Partial<WorkerOptions>, 'log' | 'store' | 'topic' | 'partition' | 'statePrefix'>;
  /** After each commit of a catch-up worker, and after each members commit (with `records` 0). */
  readonly onCommit?: (info: CommitInfo) => void;
  /** A catch-up batch failed (retried in `run` mode). */
  readonly onError?: (error: Error) => void;
  /** Progress and warnings; default console.error. */
  readonly say?: (message: string) => void;
  /** Called as the catch-up moves on, with what is left (empty once done). */
  readonly onProgress?: (left: CatchingUp[]) => void;
}): Promise<boolean> {
  const { plan, store, log } = opts;
  const { topic, partition, target } = plan;
  const where = `${topic.name}/${partition}`;
  const say = opts.say ?? ((m: string) => console.error(`tessera: ${m}`));
  /** Per pending id (same order), its progress; `joined` once it is a member. */
  const left = catchingUpOf(plan);
  const joined = new Set<number>();
  const report = () => opts.onProgress?.(left.filter((_, j) => !joined.has(j)));
  let storedMembers = plan.storedMembers;
  const names = {
    offset: offsetName(topic.name, partition),
    members: membersName(topic.name, partition),
  };
  /**
   * `fn`, retried with backoff in `run` mode while it fails (a store or log outage; reported to `onError`,
   * as a worker's failed batch is); null once `signal` aborts. A `CatchUpStopped` is thrown at once.
   */
  const retrying = async <T>(fn: () => Promise<T>): Promise<T | null> => {
    for (let backoff = 100; ; backoff = Math.min(2 * backoff, 5000)) {
      if (opts.signal?.aborted) return null;
      try {
        return await fn();
      } catch (error) {
        if (opts.mode === 'drain' || error instanceof CatchUpStopped) throw error;
        opts.onError?.(error as Error);
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  };
  /** A fenced commit of the members entry (invariant 1); false once aborted. */
  const commitMembers = async (members: readonly string[], extra: Record<string, string> = {}) => {
    const value = formatMembers(members);
    const done = await retrying(async () => {
      try {
        await store.commit({
          tiles: [],
          expect: { [names.offset]: plan.storedOffset, [names.members]: storedMembers },
          offsets: { [names.members]: value, ...extra },
        });
      } catch (error) {
        const e = error as Error;
        if (!e.message.startsWith('fenced:')) throw e;
        // A retry of a commit whose reply was lost is fenced by that very commit: the same value is stored.
        const now = await store.readOffsets([names.offset, names.members]);
        if (now[names.members] === value && (now[names.offset] ?? null) === plan.storedOffset) return true;
        throw new CatchUpStopped(
          `stream worker ${where}: another writer changed this partition while its group-bys were being caught up (${e.message}). Run exactly one worker per partition, then restart this one.`,
          { cause: e },
        );
      }
      return true;
    });
    if (done === null) return false;
    storedMembers = value;
    return true;
  };
  /** After a members commit, once `onProgress` has the new state (a worker thread posts stats on commits). */
  const committed = () =>
    opts.onCommit?.({
      topic: topic.name,
      partition,
      records: 0,
      nextOffset: target,
      tileWrites: 0,
      commitMs: 0,
    });

  const gap = plan.missingHistory;
  if (gap !== null) {
    const first = topic.groupBys.find((g) => g.name === gap.groupBys[0])!;
    say(
      `WARNING ${where}: group-by(s) ${gap.groupBys.join(', ')} have no events before ${new Date(gap.since).toISOString()}: their key list (${first.keys.join(', ')}) has its own topic '${topic.name}' at --partitions > 1, which only holds events ingested since it was added, while other topics of source '${topic.source.name}' hold earlier ones. ` +
        `Give them their history with \`tessera upload --groupby ${first.name} --until T\` (T as late as the offline data holds every event before it), best before their workers first start: once workers applied events to them the upload needs --replace-streamed, which drops the streamed events at or after T of the keys it uploads. Events between T and the topic's first event are in no log and cannot be recovered.`,
    );
  }
  if (!catchUpNeeded(plan)) return true;
  if (plan.legacy)
    say(
      `${where}: the store records no group-by memberships yet (written by an older version); taking every current group-by of topic '${topic.name}' (${plan.members.join(', ')}) as applied up to offset ${target}, as if none changed during the upgrade`,
    );
  // Invariant 3: retired ids keep their progress; the members entry drops them in the same commit.
  const retire: Record<string, string> = {};
  for (const id of plan.retired) {
    retire[catchUpOffsetName(id, topic.name, partition)] = String(target);
    if (plan.storedWatermark !== null)
      retire[catchUpPrefix(id) + watermarkName(topic.name, partition)] = plan.storedWatermark;
  }
  /** Once the commit carrying `retire` is stored (not before: a failed or fenced catch-up retires nothing). */
  const retiredDone = () => {
    if (plan.retired.length > 0)
      say(
        `${where}: store id(s) ${plan.retired.join(', ')} left topic '${topic.name}' (a group-by changed or was removed); their tiles hold the events below offset ${target}, and re-adding one catches it up from there`,
      );
  };
  // Retired ids stay listed (still true: the offset has not moved) until the last members commit, which
  // drops them with their progress: so a second writer still running the old definitions (a misconfigured
  // rolling deploy) is fenced by the new worker's first commit moments later, not after the whole catch-up.
  const members = [...plan.members, ...plan.retired];
  if (plan.newLogStart !== null) retire[logStartName(topic.name, partition)] = plan.newLogStart;
  if (plan.pending.length === 0) {
    if (!(await commitMembers(plan.members, retire))) return false;
    retiredDone();
    committed();
    return true;
  }

  for (const [i, p] of plan.pending.entries()) {
    const label = `${p.groupBys.map((g) => g.name).join(', ')} (store id ${p.id})`;
    if (p.from < target) {
      const first = await retrying(async () => {
        const end = (await log.endOffsets(topic.name))[partition] ?? 0;
        if (end < target)
          throw new CatchUpStopped(
            `stream worker ${where}: cannot catch up ${label}: the ${log.kind} log partition ends at ${end}, before the store's committed offset ${target}. The log is not the one the store was built from; see the worker's own error for the fix.`,
          );
        return { offset: await firstOffset(log, topic.name, partition, p.from) };
      });
      if (first === null) return false;
      if (first.offset !== null && first.offset > p.from)
        say(
          `WARNING ${where}: the log no longer holds offsets ${p.from}..${first.offset - 1} (retention), so their events are MISSING from ${label} unless \`tessera upload --groupby ${p.groupBys[0]!.name} --until T\` covered them (run it for the new version before restarting, with T at or after the time of the last event the log dropped, from an offline history holding every event before T)`,
        );
      say(
        `${where}: catching up ${label} on log offsets ${p.from}..${target - 1} (${target - p.from} events) before applying new events`,
      );
      const done = await catchUpOne(p.id, p.groupBys, p.from, (next) => {
        left[i] = { ...left[i]!, nextOffset: next };
        report();
      });
      if (!done) return false;
    }
    members.push(p.id);
    const last = i === plan.pending.length - 1;
    const next = last ? members.filter((id) => !plan.retired.includes(id)) : members;
    if (!(await commitMembers(next, last ? retire : {}))) return false;
    if (last) retiredDone();
    joined.add(i);
    report();
    committed();
    say(`${where}: ${label} caught up to offset ${target}; applying new events`);
  }
  return true;

  async function catchUpOne(
    id: string,
    groupBys: readonly GroupByDef[],
    from: number,
    moved: (next: number) => void,
  ): Promise<boolean> {
    const inner = new AbortController();
    const stop = () => inner.abort();
    opts.signal?.addEventListener('abort', stop, { once: true });
    let said = performance.now();
    try {
      const worker = await retrying(() =>
        createStreamWorker({
          ...opts.worker,
          log: logUpTo(log, target),
          store,
          topic: { ...topic, groupBys },
          partition,
          groupById: opts.groupById,
          statePrefix: catchUpPrefix(id),
          logBehindAtOpen: 'refuse',
          onCommit: (info) => {
            moved(info.nextOffset);
            opts.onCommit?.(info);
            if (performance.now() - said >= PROGRESS_EVERY_MS) {
              said = performance.now();
              say(
                `${where}: catching up store id ${id}: ${info.nextOffset - from} of ${target - from} events applied`,
              );
            }
            if (info.nextOffset >= target) inner.abort();
          },
          ...(opts.onError ? { onError: opts.onError } : {}),
        }),
      );
      if (worker === null) return false;
      if (opts.mode === 'drain') await worker.drain();
      else if (worker.stats().nextOffset < target) await worker.run(inner.signal);
      return worker.stats().nextOffset >= target;
    } finally {
      opts.signal?.removeEventListener('abort', stop);
    }
  }
}

/** A catch-up failure that retrying cannot fix: another writer, or a log that ends before the offset. */
class CatchUpStopped extends Error {}

/** `log` read only below offset `stopAt`: a catch-up worker must not apply what the main worker will. */
function logUpTo(log: EventLog, stopAt: number): EventLog {
  return {
    kind: log.kind,
    partitions: log.partitions,
    append: (topic, entries) => log.append(topic, entries),
    endOffsets: async (topic) => (await log.endOffsets(topic)).map((e) => Math.min(e, stopAt)),
    close: () => log.close(),
    async read(topic, partition, from, max, waitMs): Promise<LogRecord[]> {
      if (from >= stopAt) return [];
      const out = await log.read(topic, partition, from, Math.min(max, stopAt - from), waitMs);
      // Offsets are dense (event-log.ts 2); this only guards an adapter that returns more than asked.
      return out.length > 0 && out[out.length - 1]!.offset >= stopAt
        ? out.filter((r) => r.offset < stopAt)
        : out;
    },
  };
}

/** The first offset at or after `from` that the log still holds, or null when it holds none there. */
async function firstOffset(
  log: EventLog,
  topic: string,
  partition: number,
  from: number,
): Promise<number | null> {
  const [first] = await log.read(topic, partition, from, 1, 0);
  return first?.offset ?? null;
}
