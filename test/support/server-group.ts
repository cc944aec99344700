/**
 * Servers a test file starts at module level, stopped together: register `stopAll` with `afterAll` before
 * starting any, and start each through `start`, which stops those already running if one fails to start
 * (the file then fails before its hooks could stop them, and they would outlive the test run).
 *
 * @example
 * const servers = serverGroup();
 * afterAll(() => servers.stopAll());
 * const redis = await servers.start(startRedis());
 */
export interface ServerGroup {
  start<T extends { stop(): Promise<void> } | null>(starting: Promise<T>): Promise<T>;
  stopAll(): Promise<void>;
}

export function serverGroup(): ServerGroup {
  const running: { stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    const all = running.splice(0);
    await Promise.all(all.map((s) => s.stop().catch(() => {})));
  };
  return {
    async start(starting) {
      try {
        const server = await starting;
        if (server) running.push(server);
        return server;
      } catch (e) {
        await stopAll();
        throw e;
      }
    },
    stopAll,
  };
}
