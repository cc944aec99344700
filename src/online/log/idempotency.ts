import { createHash } from 'node:crypto';
import type { LogEntry } from './event-log.ts';

/**
 * Idempotent appends (`Idempotency-Key` on `POST /v1/events/:source`, `AppendOptions.idempotencyKey`): a
 * batch sent with a key is appended at most once per (topic, partition, key) within the log's dedupe window;
 * a retry with the same key and events appends only what is missing and reports the original offsets.
 * Each log keeps the record of a key in the log itself, atomically with the append (see its header).
 */

/** The HTTP header carrying the key. */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
/** Environment variable setting the dedupe window of the logs (ms). */
export const IDEMPOTENCY_WINDOW_ENV = 'TESSERA_IDEMPOTENCY_WINDOW_MS';
/** Default dedupe window: a day, as Stripe's. */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;
/** Environment variable setting how many keys the file log remembers at most. */
export const IDEMPOTENCY_MAX_KEYS_ENV = 'TESSERA_IDEMPOTENCY_MAX_KEYS';
const MAX_KEY = 200;

/**
 * Why `key` is not a valid idempotency key (1–200 printable ASCII characters), or null when it is.
 *
 * @example
 * idempotencyKeyProblem('order-42'); // null
 * idempotencyKeyProblem('');         // 'Idempotency-Key must be 1 to 200 printable ASCII characters ...'
 */
export function idempotencyKeyProblem(key: string): string | null {
  if (key.length >= 1 && key.length <= MAX_KEY && /^[\x20-\x7e]+$/.test(key)) return null;
  const got =
    key.length === 0
      ? 'got an empty value'
      : key.length > MAX_KEY
        ? `got ${key.length} characters`
        : 'got a character outside 0x20-0x7E';
  return `${IDEMPOTENCY_HEADER} must be 1 to ${MAX_KEY} printable ASCII characters (0x20-0x7E), e.g. a UUID; ${got}`;
}

/**
 * The dedupe window of a log: `given`, else env TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h; throws naming
 * `what` unless it is a positive integer of ms.
 */
export function idempotencyWindowOption(given: number | undefined, what: string): number {
  const text = process.env[IDEMPOTENCY_WINDOW_ENV];
  const ms = given ?? (text === undefined || text === '' ? DEFAULT_IDEMPOTENCY_WINDOW_MS : Number(text));
  if (!(Number.isSafeInteger(ms) && ms >= 1))
    throw new Error(
      `${what}: the idempotency window must be a positive integer (ms), got ${given ?? `${IDEMPOTENCY_WINDOW_ENV}=${text}`}; omit it (and ${IDEMPOTENCY_WINDOW_ENV}) for the default ${DEFAULT_IDEMPOTENCY_WINDOW_MS} (24 h)`,
    );
  return ms;
}

/**
 * The most keys the file log remembers: `given`, else env TESSERA_IDEMPOTENCY_MAX_KEYS, else `fallback`;
 * throws naming `what` unless it is a positive integer (0 or NaN must not turn dedupe off).
 */
export function idempotencyMaxKeysOption(given: number | undefined, fallback: number, what: string): number {
  const text = process.env[IDEMPOTENCY_MAX_KEYS_ENV];
  const n = given ?? (text === undefined || text === '' ? fallback : Number(text));
  if (!(Number.isSafeInteger(n) && n >= 1))
    throw new Error(
      `${what}: the most idempotency keys to remember must be a positive integer, got ${given ?? `${IDEMPOTENCY_MAX_KEYS_ENV}=${text}`}; omit it (and ${IDEMPOTENCY_MAX_KEYS_ENV}) for the default ${fallback}`,
    );
  return n;
}

/**
 * A digest of a batch's events (all parts, in order, with their partition keys): a retry must carry the
 * same batch to be a replay. 32 hex chars of SHA-256. `json` must give `JSON.stringify`'s text (a cache of
 * it: the file log writes the same events' JSON in its frames).
 */
export function batchFingerprint(
  parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
  json: (event: LogEntry['event']) => string = JSON.stringify,
): string {
  const h = createHash('sha256');
  for (const part of parts) {
    h.update(`${part.topic}\n`);
    for (const e of part.entries) h.update(`${e.partitionKey}\u0000${json(e.event)}\n`);
  }
  return h.digest('hex').slice(0, 32);
}

/**
 * A key used before with other events, within the window: nothing was appended. 422, as Stripe answers.
 */
export class IdempotencyConflictError extends Error {
  readonly statusCode = 422;
  override readonly name = 'IdempotencyConflictError';
  /**
   * `appended` says what the failed request did append (ingest names the topics it had reached). Extra
   * constructor arguments are the Error options (`cause`).
   */
  constructor(
    readonly key: string,
    readonly where: string,
    appended = 'nothing was appended',
    options?: ErrorOptions,
  ) {
    super(
      `${IDEMPOTENCY_HEADER} '${key}' was already used ${where} with other events; ${appended}. Use a new key for a new batch (a retry must resend exactly the same events)`,
      options,
    );
  }
}

/**
 * The log cannot take a keyed append now for a reason of its setup that lasts until an operator changes it
 * (a NATS stream whose max_age is below the window, the file log's key cap reached within the window):
 * nothing was appended. 503 (the deployment's fault, not the request's); the message names the setting to
 * change, or says to send without the key.
 */
export class IdempotencyCapacityError extends Error {
  readonly statusCode = 503;
  override readonly name = 'IdempotencyCapacityError';
}

/**
 * The log cannot dedupe appends (Kafka, or a wrapper without support): 400 (the request asks for what this
 * deployment cannot give), nothing appended.
 */
export class IdempotencyUnsupportedError extends Error {
  readonly statusCode = 400;
  override readonly name = 'IdempotencyUnsupportedError';
  constructor(kind: string) {
    super(
      `the ${kind} event log cannot deduplicate appends, so ${IDEMPOTENCY_HEADER} is refused and nothing was appended; the embedded, Redis Streams and NATS JetStream logs can (--log embedded|redis|nats), or send the batch without the header (at-least-once)`,
    );
  }
}
