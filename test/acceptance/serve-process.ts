/** `tessera serve` in a child process, driven over HTTP only, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, freePort } from './support.ts';

export interface HttpReply {
  readonly status: number;
  readonly json: any;
}

export class ServeProcess {
  url = '';
  log = '';
  private child: ChildProcess | undefined;
  private port = 0;

  constructor(
    private readonly args: readonly string[],
    readonly token?: string,
  ) {}

  get headers(): Record<string, string> {
    return {
      'content-type': 'application/json',
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
    };
  }

  /** Starts (or restarts, on the same port) and waits for /healthz. */
  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const tokenArgs = this.token ? ['--token', this.token] : [];
    const child = spawn(
      process.execPath,
      [BIN, 'serve', ...this.args, '--port', String(this.port), ...tokenArgs],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    child.stdout!.on('data', (d) => (this.log += d));
    child.stderr!.on('data', (d) => (this.log += d));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`tessera serve exited ${child.exitCode}:\n${this.log}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`tessera serve did not answer /healthz within 30 s:\n${this.log}`);
  }

  /** Sends a signal to the process (by its own PID) and waits for it to exit. */
  stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    return new Promise((done) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill(signal);
    });
  }

  async post(path: string, body: unknown, headers = this.headers): Promise<HttpReply> {
    const res = await fetch(`${this.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: res.status, json: parse(await res.text()) };
  }

  async get(path: string, headers = this.headers): Promise<HttpReply> {
    const res = await fetch(`${this.url}${path}`, { headers });
    return { status: res.status, json: parse(await res.text()) };
  }

  /** One sample of a Prometheus metric whose labels contain `label` (e.g. 'source="ev"'), or null. */
  async metric(name: string, label: string): Promise<number | null> {
    const text = await (await fetch(`${this.url}/metrics`, { headers: this.headers })).text();
    const m = new RegExp(`^${name}\\{[^}]*${label}[^}]*\\}\\s+(\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  }

  /** Waits until `groupBy` has applied `applied` events and `source` has no lag (the documented metrics). */
  async waitApplied(source: string, groupBy: string, applied: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    let got: number | null = null;
    let lag: number | null = null;
    while (Date.now() < deadline) {
      got = await this.metric('tessera_groupby_events_applied', `group_by="${groupBy}"`);
      lag = await this.metric('tessera_source_lag_events', `source="${source}"`);
      if (got === applied && lag === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`workers did not apply ${applied} events (applied=${got}, lag=${lag})\n${this.log}`);
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
