import type { OnlineStore } from '../online/store.ts';

/** A cached store health check for /readyz. */
export interface StoreHealth {
  /** Why the store cannot serve (its last check failed or is overdue), or null. Never waits. */
  unready(): string | null;
  stop(): void;
}

/**
 * Pings `store` every `intervalMs` (at most one ping in flight) and keeps the verdict, so /readyz reads it
 * without a round trip and never blocks on a hung store. A ping unanswered for `timeoutMs` counts as failed
 * even before it settles. A store without `ping` (LMDB, embedded) is always healthy. The Redis store's ping
 * on a Cluster asks every master (redis-client.ts `pingMasters`), so one master down, whose slots' fetches
 * answer 503, turns the node unready too, naming the master.
 *
 * @example
 * const health = watchStoreHealth(store);
 * const reason = health.unready(); // e.g. 'online store unreachable: Redis store at redis://…: PING failed: …'
 */
export function watchStoreHealth(
  store: OnlineStore,
  opts: { intervalMs?: number; timeoutMs?: number; now?: () => number } = {},
): StoreHealth {
  const intervalMs = opts.intervalMs ?? 2000;
  const timeoutMs = opts.timeoutMs ?? 1000;
  const now = opts.now ?? Date.now;
  if (store.ping === undefined) return { unready: () => null, stop: () => {} };
  const ping = store.ping.bind(store);
  let failure: string | null = null;
  /** When the ping in flight was sent, or null. */
  let sentAt: number | null = null;
  const check = () => {
    if (sentAt !== null) return;
    const at = (sentAt = now());
    ping(timeoutMs)
      .then(
        () => {
          if (sentAt === at) failure = null;
        },
        (e: Error) => {
          if (sentAt === at) failure = e.message;
        },
      )
      .finally(() => {
        if (sentAt === at) sentAt = null;
      });
  };
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return {
    unready() {
      const pending = sentAt !== null && now() - sentAt > timeoutMs;
      const why = failure ?? (pending ? `no reply to a PING for ${now() - sentAt!} ms` : null);
      return why === null
        ? null
        : `online store unreachable: ${why} (fetches answer 503 until it answers again)`;
    },
    stop: () => clearInterval(timer),
  };
}
