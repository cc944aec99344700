import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MGET_CONNECTION_NAME } from '../../src/online/redis-mget.ts';
import { freePort } from '../support/servers.ts';

/**
 * The store's read connection speaks TLS to a `rediss://` Redis, as its ioredis client does. A throwaway
 * CA signs a certificate for 127.0.0.1; redis-server listens on a TLS port only; the store runs in a child
 * process with NODE_EXTRA_CA_CERTS naming the CA (how a store trusts a private CA: its URL takes no CA),
 * and its reads come back as written, served by the read connection (CLIENT LIST: tessera-read, last
 * command MGET; the ioredis connection's last command is another).
 */
const dir = mkdtempSync(join(tmpdir(), 'tessera-redis-tls-'));
const server = await startTlsRedis(dir);
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/** Null, loudly (or throws with TESSERA_REQUIRE_SERVERS=1), when the test cannot run here. */
function missing(what: string): null {
  const msg = `${what}: the Redis TLS test is SKIPPED. Install it or unset TESSERA_REQUIRE_SERVERS to allow skipping.`;
  if (process.env.TESSERA_REQUIRE_SERVERS === '1') throw new Error(msg);
  console.warn(`\n*** ${msg}\n`);
  return null;
}

/** A CA and a certificate it signs for 127.0.0.1 in `dir`, then redis-server on a free TLS-only port. */
async function startTlsRedis(dir: string) {
  if (!onPath('openssl')) return missing('openssl is not installed');
  if (!onPath('redis-server')) return missing('redis-server is not installed');
  const openssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    '-new',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=tessera-test-ca',
  );
  openssl('req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '1',
    '-extfile',
    'san.cnf',
  );
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', 'server.crt']
      .concat(['--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.crt', '--tls-auth-clients', 'no'])
      .concat(['--save', '', '--appendonly', 'no', '--dir', dir]),
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const pid = child.pid!;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  for (const deadline = Date.now() + 10_000; ; ) {
    if (child.exitCode !== null)
      // Built without TLS, it refuses --tls-port at startup.
      return missing(
        `redis-server did not start with TLS options (exit ${child.exitCode}: ${stderr.trim()})`,
      );
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' }, () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on TLS port ${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `rediss://127.0.0.1:${port}`,
    ca: join(dir, 'ca.crt'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}

describe.skipIf(!server)('Redis store reads over TLS', () => {
  it('reads on its own connection over TLS (rediss://, a CA from NODE_EXTRA_CA_CERTS), values as written', async () => {
    const child = join(import.meta.dirname, '../support/redis-tls-read-child.ts');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', child, server!.url], {
      timeout: 30_000,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: server!.ca },
    });
    const { same, list } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { same: boolean; list: string };
    expect(same).toBe(true);
    const lines = list.split('\n');
    // The store's two connections (the child's admin one ran CLIENT LIST last).
    expect(lines.filter((l) => l.includes(` name=${MGET_CONNECTION_NAME} `))).toEqual([
      expect.stringMatching(/ cmd=mget /),
    ]);
    expect(lines.filter((l) => / name= .* cmd=hgetall /.test(l))).toHaveLength(1);
  }, 60_000);
});
