/**
 * A store operation failed because the store did not answer (down, hung, unreachable, or not serving yet):
 * the request may succeed later, unchanged. Its `statusCode` 503 makes the serving app answer 503
 * (retry later) instead of 500 (a bug). A store write that failed so may still have been applied.
 *
 * @example
 * try { await store.readTiles(requests); } catch (e) { if (e instanceof StoreUnavailableError) retryLater(); }
 */
export class StoreUnavailableError extends Error {
  readonly statusCode = 503;
  override readonly name = 'StoreUnavailableError';
}
