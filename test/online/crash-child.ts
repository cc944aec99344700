import { spawn } from 'node:child_process';
import type { StoreConfig } from '../../src/online/store.ts';

/** The log a crash-test worker child reads: a file log directory or a NATS JetStream server. */
export type ChildLog = { kind: 'file'; dir: string } | { kind: 'nats'; url: string; prefix: string };

const script = new URL('./crash-worker-main.ts', import.meta.url).pathname;

/**
 * Runs a stream worker in a child process (crash-worker-main.ts); kills it with SIGKILL after
 * `killAfterCommits` commits, or lets it finish when null.
 */
export function runWorkerChild(
  log: ChildLog,
  config: StoreConfig,
  killAfterCommits: number | null,
): Promise<'killed' | 'done'> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', script, JSON.stringify(log), JSON.stringify(config)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let commits = 0;
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('commit')) commits++;
        if (killAfterCommits !== null && commits >= killAfterCommits && child.exitCode === null)
          child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('done');
      else reject(new Error(`worker child exited with ${code}: ${err}`));
    });
  });
}
