/**
 * Server CPU time per HTTP fetch, next to an empty fastify route in the same process: what the HTTP path
 * around the serving core costs. CPU time (process.cpuUsage of the server), unlike latency, hardly depends
 * on other load on the machine, so it compares code versions on a shared machine.
 *
 *   npx tsx bench/serve-http-cpu.ts [--keys 20000] [--batches 1,10,100] [--rounds 8] [--requests 300]
 *                                  [--rate 300] [--profile out.cpuprofile --profile-batch 1]
 *
 * LMDB, 50 features from 10 group-bys (bench/serve.ts's feature set and preload). The server is
 * `startEmbedded` (what `tessera serve` runs: bearer token, metrics, usage counting; no stream workers) in a
 * child process, plus an empty fastify route (`POST /` answering `{}`, default options) on another port of
 * the same process. The parent sends sequential keep-alive POSTs paced at `--rate` req/s (slower when a
 * request takes longer), alternating blocks of `--requests` to the empty route and to
 * `POST /v1/features/model_50`, `--rounds` times per batch size, and prints the medians of each block's
 * server CPU per request. `core` is the serving core without HTTP (plan, read, windows, assembly, JSON) in
 * the server process; `glue` = Tessera − empty (median of the rounds' differences) − core is what Tessera's
 * own HTTP path adds. `inject` is Tessera's route through fastify's `inject` (no sockets, back to back): the
 * least noisy number, for comparing code versions.
 * `--profile` writes a CPU profile of the server during the Tessera blocks of `--profile-batch` rows (its
 * last run when `--batches` lists it twice, e.g. `--batches 1,1` to profile warmed-up code).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { openStore } from '../src/online/open-store.ts';
import { joinRowsJson } from '../src/serve/feature-json.ts';
import { startEmbedded } from '../src/serve/embedded.ts';
import { exitOnHelp, optionReader } from './args.ts';
import { featureSet, preload } from './serve.ts';

const GROUPS = 10;
const TOKEN = 'bench-token';

type ToChild =
  | { kind: 'cpu' }
  | { kind: 'core' | 'inject'; batch: number; n: number; keys: number }
  | { kind: 'profile'; start: boolean; file?: string };

/** Microseconds of CPU (user + system) this process has used. */
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// ---------------------------------------------------------------------------------------------------------
// Child: the server process.

async function child(dir: string): Promise<void> {
  const { groupBys, join: model } = featureSet(GROUPS);
  const server = await startEmbedded({
    repo: { sources: [model.left], groupBys, joins: [model] },
    dataDir: dir,
    workers: false,
    port: 0,
    token: TOKEN,
  });
  const floor = Fastify();
  floor.post('/', async () => ({}));
  const floorUrl = await floor.listen({ port: 0, host: '127.0.0.1' });
  const session = new Session();
  let seed = 99;
  process.on('message', (m: ToChild) => {
    void (async () => {
      if (m.kind === 'cpu') return process.send!({ cpu: cpuNow() });
      if (m.kind === 'core' || m.kind === 'inject') {
        const key = () => `e${Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * m.keys)}`;
        const headers = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };
        const run =
          m.kind === 'core'
            ? async () => {
                const rows = Array.from({ length: m.batch }, () => ({ entity_id: key() }));
                joinRowsJson((await server.service.fetchJoinRows([model.name], rows)).joins[0]!);
              }
            : async () => {
                const payload = { rows: Array.from({ length: m.batch }, () => ({ entity_id: key() })) };
                const url = `/v1/features/${model.name}`;
                const r = await server.app.inject({ method: 'POST', url, headers, payload });
                if (r.statusCode !== 200) throw new Error(`${url}: HTTP ${r.statusCode} ${r.body}`);
              };
        for (let k = 0; k < m.n / 5; k++) await run();
        const start = cpuNow();
        for (let k = 0; k < m.n; k++) await run();
        return process.send!({ cpu: (cpuNow() - start) / m.n });
      }
      if (m.kind !== 'profile') return;
      if (m.start) {
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 100 });
        await session.post('Profiler.start');
      } else {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(m.file!, JSON.stringify(profile));
        session.disconnect();
      }
      process.send!({});
    })();
  });
  process.on(
    'disconnect',
    () =>
      void floor
        .close()
        .then(() => server.close())
        .then(() => process.exit(0)),
  );
  process.send!({ url: server.url, floorUrl });
}

// ---------------------------------------------------------------------------------------------------------
// Parent: preload, fork the server, drive requests, print the table.

function ask<T>(proc: ChildProcess, message: ToChild): Promise<T> {
  return new Promise((resolve) => {
    proc.once('message', (reply) => resolve(reply as T));
    proc.send(message);
  });
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  exitOnHelp(argv, import.meta.url);
  const get = optionReader(argv);
  const keys = Number(get('keys', '20000'));
  const batches = get('batches', '1,10,100').split(',').map(Number);
  const rounds = Number(get('rounds', '8'));
  const perBlock = Number(get('requests', '300'));
  const rate = Number(get('rate', '300'));
  const profileFile = get('profile', '');
  const profileBatch = Number(get('profile-batch', '1'));

  const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-http-cpu-'));
  let proc: ChildProcess | undefined;
  try {
    const set = featureSet(GROUPS);
    const store = openStore({ kind: 'lmdb', path: joinPath(dir, 'store') });
    await preload(store, set.groupBys, keys, Date.now());
    await store.close();
    proc = fork(fileURLToPath(import.meta.url), ['--child', dir], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const { url, floorUrl } = await new Promise<{ url: string; floorUrl: string }>((resolve, reject) => {
      proc!.once('message', (m) => resolve(m as { url: string; floorUrl: string }));
      proc!.once('exit', (code) => reject(new Error(`bench server exited with ${code} before listening`)));
    });
    const server = proc;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let seed = 7;
    const key = () => `e${Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * keys)}`;
    const post = (base: string, path: string, body: string, auth: boolean) =>
      new Promise<void>((resolve, reject) => {
        const target = new URL(base);
        const headers: Record<string, string | number> = {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        };
        if (auth) headers.authorization = `Bearer ${TOKEN}`;
        const req = request(
          { agent, host: target.hostname, port: target.port, path, method: 'POST', headers },
          (res) => {
            res.on('data', () => {});
            res.on('end', () =>
              res.statusCode === 200 ? resolve() : reject(new Error(`${path}: HTTP ${res.statusCode}`)),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    /** Server CPU µs per request over `n` paced sequential requests. */
    const block = async (target: 'empty' | 'tessera', batch: number, n: number): Promise<number> => {
      const bodies = Array.from({ length: n }, () =>
        JSON.stringify({ rows: Array.from({ length: batch }, () => ({ entity_id: key() })) }),
      );
      const start = (await ask<{ cpu: number }>(server, { kind: 'cpu' })).cpu;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const wait = t0 + (i * 1000) / rate - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        if (target === 'empty') await post(floorUrl, '/', bodies[i]!, true);
        else await post(url, `/v1/features/${set.join.name}`, bodies[i]!, true);
      }
      const end = (await ask<{ cpu: number }>(server, { kind: 'cpu' })).cpu;
      return (end - start) / n;
    };

    console.log(
      `serve-http-cpu — server CPU µs per request (medians of ${rounds} blocks of ${perBlock} requests at <= ${rate}/s), ` +
        `LMDB, ${keys} keys, 50 features; node ${process.version}`,
    );
    const cells = (c: (string | number)[]) =>
      c
        .map((x, i) => (typeof x === 'number' ? x.toFixed(i === 6 ? 2 : 0) : x).padStart(i === 0 ? 4 : 13))
        .join(' ');
    console.log(
      cells([
        'rows',
        'empty route',
        'Tessera',
        'core',
        'glue',
        'inject',
        'Tessera/empty',
        'min empty',
        'min Tessera',
      ]),
    );
    for (const [index, batch] of batches.entries()) {
      await block('empty', batch, perBlock);
      await block('tessera', batch, perBlock);
      const empty: number[] = [];
      const tessera: number[] = [];
      for (let r = 0; r < rounds; r++) {
        empty.push(await block('empty', batch, perBlock));
        const profiling = profileFile !== '' && index === batches.lastIndexOf(profileBatch);
        if (profiling) await ask(server, { kind: 'profile', start: true });
        tessera.push(await block('tessera', batch, perBlock));
        if (profiling) await ask(server, { kind: 'profile', start: false, file: profileFile });
      }
      const n = Math.max(200, Math.ceil(5000 / batch));
      const core = (await ask<{ cpu: number }>(server, { kind: 'core', batch, n, keys })).cpu;
      const inject = (await ask<{ cpu: number }>(server, { kind: 'inject', batch, n, keys })).cpu;
      const e = median(empty);
      const t = median(tessera);
      // Paired by round, so load that drifts between rounds cancels out.
      const extra = median(tessera.map((x, r) => x - empty[r]!));
      const values = [e, t, core, extra - core, inject, t / e, Math.min(...empty), Math.min(...tessera)];
      console.log(cells([String(batch), ...values]));
    }
  } finally {
    if (proc?.connected) {
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.disconnect();
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const c = process.argv.indexOf('--child');
if (c >= 0) await child(process.argv[c + 1]!);
else await main();
