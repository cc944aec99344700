/**
 * Starting the stream workers of `tessera serve` when the store or log does not answer yet: the node
 * serves fetches and ingest meanwhile (/readyz 503), and retries the start with backoff until it works,
 * so a node started before its Redis recovers by itself, as it does from an outage after it started.
 */

/** Error names (kept across worker threads) of "does not answer now, may later, unchanged" failures. */
const UNAVAILABLE = new Set(['StoreUnavailableError', 'LogUnavailableError', 'AppendOutcomeUnknownError']);

/**
 * Whether `error`, or an error it wraps (`cause`), says the store or log did not answer, as opposed to a
 * mistake a retry cannot fix (a definition, a partition count, a fenced worker). Matches by `name`, since
 * errors from a worker thread arrive as plain `Error`s that keep their own properties.
 *
 * @example
 * isUnavailable(new Error('stream worker thread could not start: …', { cause: storeDown })); // true
 */
export function isUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++)
    if (UNAVAILABLE.has(e.name)) return true;
  return false;
}

/** First delay between start attempts; doubles up to `MAX_RETRY_MS` (the stream workers' own cap). */
export const FIRST_RETRY_MS = 500;
export const MAX_RETRY_MS = 5000;

/** The start attempts since the first failure, for /readyz and logs. */
export interface StartRetry {
  readonly attempts: number;
  readonly sinceMs: number;
  readonly error: Error;
}

/**
 * Calls `attempt` until it resolves, waiting `FIRST_RETRY_MS` doubling to `MAX_RETRY_MS` between tries,
 * while it fails with an unavailable error (`isUnavailable`). Resolves with the result; with null once
 * `signal` aborts or an attempt fails otherwise (passed to `onFatal`). `onRetry` sees each failure, to
 * report it; an attempt already running when `signal` aborts is awaited and its result returned, so the
 * caller can stop what it started.
 *
 * @example
 * const pool = await retryStart({ first, attempt: startPool, signal, onRetry: (r) => (state = r), onFatal });
 */
export async function retryStart<T>(opts: {
  /** The failure of the attempt before the first retry. */
  readonly first: Error;
  readonly attempt: () => Promise<T>;
  readonly signal: AbortSignal;
  readonly onRetry: (retry: StartRetry) => void;
  readonly onFatal: (error: Error) => void;
  /** For tests. */
  readonly firstDelayMs?: number;
}): Promise<T | null> {
  let retry: StartRetry = { attempts: 1, sinceMs: Date.now(), error: opts.first };
  opts.onRetry(retry);
  let delay = opts.firstDelayMs ?? FIRST_RETRY_MS;
  for (;;) {
    if (!(await sleep(delay, opts.signal))) return null;
    try {
      return await opts.attempt();
    } catch (error) {
      if (opts.signal.aborted) return null;
      if (!isUnavailable(error)) {
        opts.onFatal(error as Error);
        return null;
      }
      retry = { attempts: retry.attempts + 1, sinceMs: retry.sinceMs, error: error as Error };
      opts.onRetry(retry);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }
}

/** Resolves true after `ms`, or false at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
