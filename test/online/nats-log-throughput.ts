/**
 * Measures the NATS JetStream log against the embedded file log (not a test; run by hand):
 * ingest (validate + durable append, batches of 500), raw reads (pages of 5000) and one stream worker
 * draining the fixtures' group-bys into LMDB, over `EVENTS` random fixture events.
 * Usage: npx tsx test/online/nats-log-throughput.ts nats://127.0.0.1:4222 [EVENTS=20000]
 * (it deletes the streams it created).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { startStreamWorkers } from '../../src/online/stream-runner.ts';
import { events, groupBys, randomEvents } from './fixtures.ts';
import { ingestAll } from './nats-kafka-support.ts';

const [url = 'nats://127.0.0.1:4222', n = '20000'] = process.argv.slice(2);
const all = randomEvents(1, Number(n));
const dir = mkdtempSync(join(tmpdir(), 'tessera-log-throughput-'));
const rate = (count: number, t0: number) => Math.round(count / ((performance.now() - t0) / 1000));
const prefix = `throughput-${Date.now()}`;
const logs: [string, EventLog][] = [
  ['file', openFileLog(join(dir, 'log'))],
  ['nats', openNatsLog(url, { prefix })],
];
try {
  for (const [name, log] of logs) {
    let t0 = performance.now();
    await ingestAll(log, all, 500);
    const ingest = rate(all.length, t0);
    t0 = performance.now();
    let read = 0;
    for (let page; (page = await log.read('events', 0, read, 5000)).length > 0; ) read += page.length;
    const reads = rate(read, t0);
    const store = openStore({ kind: 'lmdb', path: join(dir, `store-${name}`) });
    t0 = performance.now();
    await (await startStreamWorkers({ sources: [events], groupBys, log, store })).drain();
    const drain = rate(all.length, t0);
    console.log(`${name}: ingest ${ingest} ev/s, read ${reads} ev/s, worker drain ${drain} ev/s`);
    await store.close();
    await log.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  for await (const name of jsm.streams.names())
    if (name.startsWith(`${prefix}_`)) await jsm.streams.delete(name);
  await nc.close();
}
