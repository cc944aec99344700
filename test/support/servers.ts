/**
 * Starts throwaway redis-server / nats-server processes on free ports for tests.
 *
 * Each helper returns null when the binary is not installed, after printing a loud warning, so suites can
 * `describe.skipIf(!server)`; with env TESSERA_REQUIRE_SERVERS=1 a missing binary throws instead (CI sets it
 * so a missing server can never silently skip coverage). Callers stop servers in `afterAll` via `stop()`,
 * which kills by PID.
 *
 * @example
 * const redis = await startRedis();
 * afterAll(() => redis?.stop());
 * describe.skipIf(!redis)('redis store', () => { ... new Redis(redis!.url) ... });
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestServer {
  readonly port: number;
  /** Connection URL (`redis://127.0.0.1:PORT` or `nats://127.0.0.1:PORT`). */
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function hasBinary(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function missing(bin: string): null {
  const msg = `${bin} is not installed: tests that need it are SKIPPED. Install ${bin} or unset TESSERA_REQUIRE_SERVERS to allow skipping.`;
  if (process.env.TESSERA_REQUIRE_SERVERS === '1') throw new Error(msg);
  console.warn(`\n*** ${msg}\n`);
  return null;
}

async function waitForPort(
  port: number,
  child: ChildProcess,
  bin: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${bin} exited with code ${child.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = createConnection({ port, host: '127.0.0.1' }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${bin} did not listen on port ${port} within ${timeoutMs} ms`);
}

async function startServer(
  bin: string,
  scheme: string,
  args: (port: number, dir: string) => string[],
): Promise<TestServer | null> {
  if (!hasBinary(bin)) return missing(bin);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `tessera-${bin}-`));
  const child = spawn(bin, args(port, dir), { stdio: 'ignore', cwd: dir });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${bin}`);
  await waitForPort(port, child, bin);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    pid,
    async stop() {
      if (child.exitCode === null) process.kill(pid, 'SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts an in-memory redis-server (no RDB/AOF) on a free port; null if redis-server is missing. */
export function startRedis(): Promise<TestServer | null> {
  return startServer('redis-server', 'redis', (port, dir) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
}

/** Starts nats-server with JetStream (store in a temp dir) on a free port; null if nats-server is missing. */
export function startNats(): Promise<TestServer | null> {
  return startServer('nats-server', 'nats', (port, dir) => [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    dir,
  ]);
}
