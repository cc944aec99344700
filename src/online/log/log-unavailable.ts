/**
 * The event log's broker did not answer (down, hung, unreachable): the operation failed without changing
 * the log, and may succeed later, unchanged. Its `statusCode` 503 makes the serving app answer 503 (retry
 * later), as `StoreUnavailableError` does for the store.
 *
 * @example
 * try { await log.append(topic, entries); } catch (e) { if (e instanceof LogUnavailableError) retryLater(); }
 */
export class LogUnavailableError extends Error {
  readonly statusCode = 503;
  override readonly name: string = 'LogUnavailableError';
}

/**
 * An append whose outcome is unknown: it was sent, but the broker did not confirm it (no reply within the
 * timeout, connection lost), or confirmed part of it only. Some or all of its events may be in the log, or
 * be added once the broker resumes, so resending the batch may append them twice: appends are at-least-once.
 * The message names the log, what is known, and says so. 503, like `LogUnavailableError`.
 *
 * @example
 * throw new AppendOutcomeUnknownError(`Redis Streams log at ${url}: ${appendOutcomeUnknown(events, cause)}`);
 */
export class AppendOutcomeUnknownError extends LogUnavailableError {
  override readonly name: string = 'AppendOutcomeUnknownError';
}

/** What a caller of an append with an unknown outcome should do; ends every such message. */
export const UNKNOWN_APPEND_ADVICE =
  'Its events may or may not be in the log (or be added once the broker resumes): resending the batch may store them twice, and features would count those twice. Resend once the broker answers if duplicates are acceptable; otherwise check which events arrived first';

/** What to do about an unknown outcome of an append sent with an idempotency key; ends such messages. */
export const KEYED_APPEND_ADVICE =
  'It was sent with an idempotency key: resend the same events with the same key once the broker answers, within the idempotency window (env TESSERA_IDEMPOTENCY_WINDOW_MS, 24 h by default), which appends only what is not in the log yet';

/** The advice ending an unknown-outcome message: `KEYED_APPEND_ADVICE` for an append with a key. */
export function unknownAppendAdvice(keyed: boolean): string {
  return keyed ? KEYED_APPEND_ADVICE : UNKNOWN_APPEND_ADVICE;
}

/**
 * Events per reply timeout of one log command: an append or read of n events gets ⌈n / this⌉ timeouts, so
 * a big batch on a healthy broker (~0.65 s for 100,000 events in one Redis script, ~1-2 s acknowledged by
 * JetStream, on a 2-core VM) does not time out, while a small one to a hung broker fails within one timeout.
 */
export const EVENTS_PER_TIMEOUT = 25_000;

/**
 * The reply deadline of a log command over `events` events: `timeoutMs` per `EVENTS_PER_TIMEOUT` (at least
 * one), at most setTimeout's limit (a longer delay would fire at once).
 *
 * @example
 * scaledTimeout(2000, 100_000); // 8000
 */
export function scaledTimeout(timeoutMs: number, events: number): number {
  return Math.min(2 ** 31 - 1, timeoutMs * Math.max(1, Math.ceil(events / EVENTS_PER_TIMEOUT)));
}

/**
 * A reply timeout option: `given`, else the integer in env `env`, else `fallback`; throws naming `what`,
 * the option and the variable unless it is a positive integer of ms.
 *
 * @example
 * timeoutOption(undefined, 'TESSERA_NATS_TIMEOUT_MS', 5000, 'NATS JetStream log'); // 5000 when the env is unset
 */
export function timeoutOption(
  given: number | undefined,
  env: string,
  fallback: number,
  what: string,
): number {
  const text = process.env[env];
  const ms = given ?? (text === undefined || text === '' ? fallback : Number(text));
  if (!(Number.isSafeInteger(ms) && ms >= 1))
    throw new Error(
      `${what}: the reply timeout must be a positive integer (ms), got ${given ?? `${env}=${text}`}; omit it (and ${env}) for the default ${fallback}`,
    );
  return ms;
}
