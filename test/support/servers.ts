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
 * const cluster = await startRedisCluster(); // cluster.url: 'redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...'
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

/**
 * A free TCP port on 127.0.0.1, picked at random below the OS's ephemeral range (32768+ on Linux, 49152+
 * on macOS). A port the OS hands out (`listen(0)`) is also the pool for outgoing connections' local ports,
 * so with test files in parallel a client could take it before the server binds it, or while a test
 * restarts its server there. Two files picking the same random port is rare, and `startServer` retries.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error('freePort: no free port among 50 random picks in 20000-31999');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
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
  args: (port: number, dir: string) => string[] | Promise<string[]>,
  /** Whether the server answering on `port` is this child (not another file's server on the same port). */
  isOurs?: (port: number, child: ChildProcess) => boolean,
): Promise<TestServer | null> {
  if (!hasBinary(bin)) return missing(bin);
  // Test files run in parallel: another file's server may take the free port first (this one then exits).
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `tessera-${bin}-`));
    const child = spawn(bin, await args(port, dir), { stdio: 'ignore', cwd: dir });
    try {
      await waitForPort(port, child, bin);
      if (isOurs !== undefined && !isOurs(port, child))
        throw new Error(`${bin} on port ${port}: the server answering there is not the one started`);
      return running(scheme, port, dir, child);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      const lost = child.exitCode !== null || isOurs !== undefined;
      if (!lost || attempt === 3) {
        child.kill('SIGKILL');
        throw error;
      }
      child.kill('SIGKILL');
    }
  }
}

/** A started server as a `TestServer`. */
function running(scheme: string, port: number, dir: string, child: ChildProcess): TestServer {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${child.spawnfile}`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const redisArgs = (port: number, dir: string) => [
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
];

/** Starts an in-memory redis-server (no RDB/AOF) on a free port; null if redis-server is missing. */
export function startRedis(): Promise<TestServer | null> {
  return startServer('redis-server', 'redis', redisArgs);
}

/**
 * Starts an in-memory redis-server on `port` itself (a server coming back where its clients expect it;
 * `startRedis` picks a free port) and resolves once it listens. `extraArgs` go on its command line (e.g.
 * `--requirepass`). The caller stops it through the child (kill, SIGSTOP/SIGCONT); its temp dir goes when
 * it exits.
 */
export async function startRedisOn(port: number, extraArgs: readonly string[] = []): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-redis-server-'));
  const child = spawn('redis-server', [...redisArgs(port, dir), ...extraArgs], { stdio: 'ignore', cwd: dir });
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitForPort(port, child, 'redis-server', 20_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return child;
}

/** A Redis Cluster of test servers: `url` is `redis+cluster://` with every master as a seed node. */
export interface TestCluster {
  readonly url: string;
  readonly masters: readonly TestServer[];
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster of `masters` in-memory redis-servers (no replicas) on free ports, joined by
 * `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`. Null (loudly) if
 * redis-server or redis-cli is missing. With `password`, every node requires it (`--requirepass`,
 * `--masterauth`); `url` then carries no password.
 */
export async function startRedisCluster(
  masters = 3,
  opts: { password?: string } = {},
): Promise<TestCluster | null> {
  const auth =
    opts.password === undefined ? [] : ['--requirepass', opts.password, '--masterauth', opts.password];
  const cli = opts.password === undefined ? [] : ['-a', opts.password, '--no-auth-warning'];
  if (!hasBinary('redis-cli')) return missing('redis-cli');
  const nodes: TestServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      // The bus port is picked too: Redis's default (port + 10000) lands in the OS's ephemeral range, where
      // an outgoing connection may hold it; the node then exits right after its client port answered.
      const node = await startServer(
        'redis-server',
        'redis',
        async (port, dir) => [
          ...redisArgs(port, dir),
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(await freePort()),
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          '5000',
          ...auth,
        ],
        (port, child) => {
          const info = spawnSync('redis-cli', [...cli, '-p', String(port), 'info', 'server'], {
            encoding: 'utf8',
            timeout: 10_000,
          });
          return (
            child.exitCode === null && /process_id:(\d+)/.exec(info.stdout ?? '')?.[1] === String(child.pid)
          );
        },
      );
      if (node === null) return null;
      nodes.push(node);
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    const created = spawnSync(
      'redis-cli',
      [...cli, '--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0)
      throw new Error(
        `redis-cli --cluster create failed (${created.status}): ${created.stdout}${created.stderr}`,
      );
    const deadline = Date.now() + 20_000;
    for (const n of nodes)
      for (;;) {
        const info = spawnSync('redis-cli', [...cli, '-p', String(n.port), 'cluster', 'info'], {
          encoding: 'utf8',
        });
        if (/cluster_state:ok/.test(info.stdout ?? '')) break;
        if (Date.now() > deadline)
          throw new Error(`Redis Cluster node ${n.port} not ok within 20 s: ${info.stdout}${info.stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    return { url: `redis+cluster://${addresses.join(',')}`, masters: nodes, stop };
  } catch (e) {
    await stop();
    throw e;
  }
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
