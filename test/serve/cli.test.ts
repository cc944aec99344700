import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../offline/support.ts';
import { fetchCli } from '../support/fetch-cli.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const REPO = new URL('./fixture-repo', import.meta.url).pathname;
const dirs: string[] = [];

/** Spawns `tessera serve` with `args`; resolves once it prints its URL (the process and its output so far). */
async function startServe(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { text: '' };
  child.stdout.on('data', (d) => (output.text += d));
  child.stderr.on('data', (d) => (output.text += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /at (http:\/\/[\d.:]+)/.exec(output.text);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`serve exited with ${code}: ${output.text}`));
    });
  });
  return { child, url, output };
}

afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('tessera serve / fetch', () => {
  it('serves with a token, ingests, fetches over HTTP and from the store, and stops cleanly', async () => {
    const dataDir = join(tempDir('tessera-cli-serve-'), 'state');
    dirs.push(dataDir);
    const {
      child: serve,
      url,
      output,
    } = await startServe(['--repo', REPO, '--data-dir', dataDir, '--port', '0', '--token', 'tok']);
    try {
      expect(output.text).toContain('try: curl -H "authorization: Bearer $TESSERA_TOKEN"');
      const t = Date.now();
      const headers = { 'content-type': 'application/json', authorization: 'Bearer tok' };
      const events = [
        { user_id: 'u1', amount: 5, ts: t - 1000 },
        { user_id: 'u1', amount: 7.5, ts: t - 500 },
      ];
      const ingest = await fetch(`${url}/v1/events/payments`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ events }),
      });
      expect(ingest.status).toBe(200);
      expect((await fetch(`${url}/v1/events/payments`, { method: 'POST', body: '[]' })).status).toBe(401);

      // Wait until the worker has applied both events.
      let body: { features: Record<string, unknown> } = { features: {} };
      for (let i = 0; i < 200 && body.features.user_spend_count_lifetime !== 2; i++) {
        body = await (await fetch(`${url}/v1/features/spend_model?user_id=u1`, { headers })).json();
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(body.features).toEqual({
        user_spend_count_1h: 2,
        user_spend_count_lifetime: 2,
        user_spend_amount_sum_1d: 12.5,
      });

      const viaHttp = await fetchCli([
        '--url',
        url,
        '--token',
        'tok',
        '--join',
        'spend_model',
        '--key',
        'user_id=u1',
        '--at',
        String(t),
      ]);
      expect(viaHttp).toMatchObject({ join: 'spend_model', at: t, features: body.features });
    } finally {
      serve.kill('SIGTERM');
      await new Promise((resolve) => serve.once('exit', resolve));
    }
    expect(serve.exitCode).toBe(0);
    expect(output.text).toContain('shutting down');

    // The state survives the server: read it straight from the LMDB store.
    const direct = (await fetchCli([
      '--repo',
      REPO,
      '--data-dir',
      dataDir,
      '--groupby',
      'user_spend',
      '--key',
      'user_id=u1',
    ])) as {
      features: Record<string, unknown>;
    };
    expect(direct.features.user_spend_count_lifetime).toBe(2);

    // A second serving process on the same store with --no-workers ingests but never applies events: two
    // processes running workers for one partition would count every event twice.
    const {
      child: reader,
      url: readerUrl,
      output: readerOutput,
    } = await startServe(['--repo', REPO, '--data-dir', dataDir, '--port', '0', '--no-workers']);
    try {
      expect(readerOutput.text).toContain('workers: none');
      const posted = await fetch(`${readerUrl}/v1/events/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events: [{ user_id: 'u1', amount: 1, ts: Date.now() }] }),
      });
      expect(posted.status).toBe(200);
      await new Promise((r) => setTimeout(r, 500));
      const after = (await (await fetch(`${readerUrl}/v1/features/spend_model?user_id=u1`)).json()) as {
        features: Record<string, unknown>;
      };
      expect(after.features.user_spend_count_lifetime).toBe(2);
    } finally {
      reader.kill('SIGTERM');
      await new Promise((resolve) => reader.once('exit', resolve));
    }
    await expect(
      fetchCli(['--repo', REPO, '--data-dir', dataDir, '--join', 'nope', '--key', 'user_id=u1']),
    ).rejects.toThrow("unknown join 'nope'; this server serves 'spend_model'");
  });
});
