import { InvalidArgumentError, Option } from 'commander';
import { parseExactHistory } from '../online/runtime-config.ts';
import { DEFAULT_EXACT_HISTORY_MS } from '../online/worker.ts';

/** commander argument parsers shared by the commands: a bad value fails with the expected form. */

export function choice<T extends string>(value: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}`);
  return value as T;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('expected a port 0..65535');
  return n;
}

/**
 * `--redis-prefix`: keys of the Redis store and Streams log start with it (default `tessera:`), so several
 * stores can share one Redis, or a Cluster (which has only database 0). Every process of one deployment
 * must pass the same prefix.
 */
export const REDIS_PREFIX_HELP =
  "key prefix of the Redis store and log (default 'tessera:'), to keep several deployments apart on one Redis or Cluster; every process of one deployment passes the same";

/** `--exact-history`: a duration such as `1h`, `90m` or `0` (see runtime-config.ts). */
export function exactHistory(value: string): number {
  try {
    return parseExactHistory(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/**
 * The `--exact-history <duration>` option; its help shows the default as `1h`, not as 3600000 (ms), so it
 * reads as the duration the option takes.
 */
export function exactHistoryOption(description: string): Option {
  return new Option('--exact-history <duration>', description)
    .argParser(exactHistory)
    .default(DEFAULT_EXACT_HISTORY_MS, `${DEFAULT_EXACT_HISTORY_MS / 3_600_000}h`);
}
