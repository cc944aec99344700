/**
 * The partition count a shared event log (Redis Streams, NATS JetStream, Kafka) records for its deployment
 * (`EventLog.checkPartitionCount`). Every producer and worker must use the same count: an entity's partition
 * is `partitionOf(key, count)`, and workers read partitions 0..count-1, so a process with another count
 * appends events no worker reads (or runs workers that miss partitions), and nothing reports it. The first
 * process to check records its count; later ones are compared with it. (The file log keeps its own,
 * `<dir>/.partitions`, checked when it opens: file-log.ts invariant 6.)
 */

/** A process's `--partitions` differs from the count its shared log records. */
export class PartitionCountMismatchError extends Error {
  override readonly name = 'PartitionCountMismatchError';
  constructor(
    /** The log, for the message, e.g. `Redis Streams log at redis://host:6379`. */
    readonly log: string,
    /** Where the count is recorded (a key, a subject). */
    readonly record: string,
    readonly recorded: number,
    readonly mine: number,
    /** How to delete the record, e.g. `delete key 'tessera:log:partitions' (redis-cli DEL ...)`. */
    readonly drop: string,
  ) {
    super(
      `${log} belongs to a deployment of ${plural(recorded)} (recorded in ${record}), but this process runs with ` +
        `--partitions ${mine}${mine === 1 ? ' (the default)' : ''}: it would append events to partitions no stream ` +
        `worker reads, or run workers that miss some. Start it with --partitions ${recorded}, as every tessera serve ` +
        `and tessera stream of this deployment. A log's count cannot change (the partition of every entity depends ` +
        `on it): for another count, start over with a new log and store and replay the events into them. If the ` +
        `record is what is wrong (the first process to check a log sets it, from its own --partitions), stop every ` +
        `process of the deployment, ${drop}, and start them again with the right count.`,
    );
  }
}

/**
 * Compares `recorded` (the text of the log's record) with this process's count `mine`; throws
 * `PartitionCountMismatchError` when they differ, or a plain error when the record is not a count.
 * `drop` says how to delete the record (`PartitionCountMismatchError.drop`).
 *
 * @example
 * checkRecordedPartitions('Redis Streams log at redis://r:6379', "key 'tessera:log:partitions'", '2', 2, 'delete it'); // ok
 */
export function checkRecordedPartitions(
  log: string,
  record: string,
  recorded: string,
  mine: number,
  drop: string,
): void {
  const n = Number(recorded);
  if (!Number.isSafeInteger(n) || n < 1 || String(n) !== recorded.trim())
    throw new Error(
      `${log}: ${record} holds '${recorded.slice(0, 40)}', not a partition count; it should hold the count ` +
        `every tessera serve and stream of this deployment runs with (--partitions): set it to that number.`,
    );
  if (n !== mine) throw new PartitionCountMismatchError(log, record, n, mine, drop);
}

function plural(n: number): string {
  return `${n} partition${n === 1 ? '' : 's'}`;
}
