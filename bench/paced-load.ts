import { Agent, request } from 'node:http';

/**
 * Open-loop HTTP load at a fixed request rate, for latency percentiles that are not queueing artefacts.
 *
 * autocannon's `overallRate` is a per-second quota per connection: each connection sends its quota
 * back to back at the top of every second (lib/httpClient.js, `rateInterval`), so at any rate its
 * latencies are those of a closed loop at full concurrency for part of each second. Here request `i` is
 * issued at `t0 + i / rate`, whether or not earlier ones have answered (up to `maxInFlight` sockets), and
 * each latency is timed with hrtime from the moment the request is issued to the end of its response.
 * `lateMs` is how far behind schedule the generator's own timer issued the worst request (a sanity check:
 * a large value means the machine, not the server, was saturated). `serverMs` holds the server's own time
 * of each 200 response that reported one: the sum of its `Server-Timing` durations (`fetch` and `recv`,
 * src/serve/routes/feature-routes.ts).
 */
export interface PacedResult {
  readonly latencies: number[];
  readonly serverMs: number[];
  readonly errors: number;
  readonly lateMs: number;
}

/** The sum of a Server-Timing header's `dur=` values, in ms, or NaN when there is none. */
export function serverDuration(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  let total = NaN;
  for (const m of value.matchAll(/dur=([\d.]+)/g)) total = (Number.isNaN(total) ? 0 : total) + Number(m[1]);
  return total;
}

export async function pacedLoad(opts: {
  url: string;
  path: string;
  body: () => string;
  rate: number;
  durationS: number;
  maxInFlight?: number;
}): Promise<PacedResult> {
  const target = new URL(opts.url);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.maxInFlight ?? 64 });
  const total = Math.max(1, Math.round(opts.rate * opts.durationS));
  const interval = 1000 / opts.rate;
  const latencies: number[] = [];
  const serverMs: number[] = [];
  let errors = 0;
  let lateMs = 0;
  let issued = 0;
  let done = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const finish = () => {
      if (++done === total) resolve();
    };
    const issue = () => {
      const payload = opts.body();
      const started = process.hrtime.bigint();
      const req = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: opts.path,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            if (res.statusCode === 200) {
              latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
              const server = serverDuration(res.headers['server-timing']);
              if (!Number.isNaN(server)) serverMs.push(server);
            } else errors++;
            finish();
          });
        },
      );
      req.on('error', () => {
        errors++;
        finish();
      });
      req.end(payload);
    };
    const tick = () => {
      const now = performance.now();
      while (issued < total && t0 + issued * interval <= now) {
        lateMs = Math.max(lateMs, now - (t0 + issued * interval));
        issued++;
        issue();
      }
      if (issued < total) setTimeout(tick, Math.max(0, t0 + issued * interval - performance.now()));
    };
    tick();
  });
  agent.destroy();
  return { latencies, serverMs, errors, lateMs };
}
