import { spawn } from 'node:child_process';
import type { StoreConfig } from '../../src/online/store.ts';

/** The log a crash-test worker child reads: a file log directory or a NATS JetStream server. */
export type ChildLog = { kind: 'file'; dir: string } | { kind: 'nats'; url: string; prefix: string };

/**
 * Where a Redis-backed child SIGKILLs itself (crash-worker-main.ts): at its `skip`-th (from 0) Redis command
 * of `phase` since it started. Phases of a commit: 'stage' (an HSET of a big commit's chunk into its
 * staging hash), 'record' (the script making the staged chunks the writer's log, with the offsets), 'apply'
 * (a script applying one chunk of a log, the writer's own or one `readOffsets` finishes), 'commit' (a commit
 * in one script); 'any' counts every command. `at`: 'sent' right after the command is written to the
 * socket, 'reply' when its reply arrives, 'torn' after only the first `fraction` of the socket write
 * carrying it reached Redis (a process killed while the kernel still held part of a pipeline).
 */
export interface CrashPoint {
  readonly phase: 'stage' | 'record' | 'apply' | 'commit' | 'any';
  readonly skip: number;
  readonly at: 'sent' | 'reply' | 'torn';
  readonly fraction?: number;
}

export interface ChildOptions {
  /** The worker's batch size (default 23). */
  readonly batchSize?: number;
  /** A point where the child kills itself (Redis stores only). */
  readonly crash?: CrashPoint;
  /** Milliseconds after the worker opened at which the parent kills the child. */
  readonly killAfterMs?: number;
}

/** How a child ended: killed (and where, when it killed itself) or done, and how many commits it made. */
export interface ChildRun {
  readonly outcome: 'killed' | 'done';
  /** The child's own `kill <phase> <at> <kind>` line when it hit its `CrashPoint`. */
  readonly killedAt: string | null;
  readonly commits: number;
}

const script = new URL('./crash-worker-main.ts', import.meta.url).pathname;

/**
 * Runs a stream worker in a child process (crash-worker-main.ts); kills it with SIGKILL after
 * `killAfterCommits` commits, or lets it finish when null.
 */
export async function runWorkerChild(
  log: ChildLog,
  config: StoreConfig,
  killAfterCommits: number | null,
): Promise<'killed' | 'done'> {
  return (await runChild(log, config, killAfterCommits, {})).outcome;
}

/** `runWorkerChild` with `opts` (a batch size, a crash point, a timed kill), reporting where it was killed. */
export function runChild(
  log: ChildLog,
  config: StoreConfig,
  killAfterCommits: number | null,
  opts: ChildOptions,
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', script, JSON.stringify(log), JSON.stringify(config), JSON.stringify(opts)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let commits = 0;
    let killedAt: string | null = null;
    let timer: NodeJS.Timeout | undefined;
    let out = '';
    let err = '';
    const kill = () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    };
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('commit')) commits++;
        if (line.startsWith('kill ')) killedAt = line.slice(5);
        if (line.startsWith('start') && opts.killAfterMs !== undefined)
          timer = setTimeout(kill, opts.killAfterMs);
        if (killAfterCommits !== null && commits >= killAfterCommits) kill();
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve({ outcome: 'killed', killedAt, commits });
      else if (code === 0) resolve({ outcome: 'done', killedAt, commits });
      else reject(new Error(`worker child exited with ${code}: ${err}`));
    });
  });
}
