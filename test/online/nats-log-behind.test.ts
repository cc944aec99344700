/**
 * Worker invariant 11 on NATS JetStream: a partition's stream deleted and recreated under a running worker.
 * The NATS reader refuses an offset past the stream's end itself (its own error), so the worker must compare
 * the ends when a read fails too, not only when one comes back empty: otherwise it retried forever and,
 * once the new stream grew past its offset, silently skipped the new stream's first events.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startNats } from '../support/servers.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';

const nats = await startNats();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await nats?.stop();
});

const [topic] = streamTopics(events, groupBys, 1);

describe.skipIf(!nats)('a NATS stream deleted and recreated under a running worker', () => {
  it('stops the worker for good, naming the offset and the new end', async () => {
    const log = openNatsLog(nats!.url, { prefix: 'behind' });
    cleanups.push(() => log.close());
    await ingestEvents(log, events, groupBys, randomEvents(1, 30));
    const d = tempDir();
    cleanups.push(d.remove);
    const store = openStore({ kind: 'lmdb', path: d.path });
    cleanups.push(() => store.close());
    const errors: Error[] = [];
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      pollMs: 20,
      onError: (e) => errors.push(e),
    });
    await w.drain();
    expect(w.stats().nextOffset).toBe(30);
    const abort = new AbortController();
    const running = w.run(abort.signal).then(
      () => null,
      (e: Error) => e,
    );
    await new Promise((r) => setTimeout(r, 300));

    // Deleted, then recreated by another producer with 5 events.
    const nc = await connect({ servers: nats!.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const s of jsm.streams.list())
      if (s.config.name.startsWith('behind_')) names.push(s.config.name);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) await jsm.streams.delete(name);
    const producer = openNatsLog(nats!.url, { prefix: 'behind' });
    cleanups.push(() => producer.close());
    await ingestEvents(producer, events, groupBys, randomEvents(2, 5));
    const recreated = performance.now();

    const stopped = await Promise.race([
      running,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 10_000)),
    ]);
    abort.abort();
    expect(stopped).toBeInstanceOf(Error);
    expect((stopped as Error).message).toMatch(
      new RegExp(
        `stream worker ${topic.name}/0 stopped: the store's committed offset 30 is past the end of nats log topic '${topic.name}' partition 0 \\(5 records\\)`,
      ),
    );
    expect(performance.now() - recreated).toBeLessThan(8000);
    expect(w.stats().nextOffset).toBe(30);
    expect((await store.readOffsets([`stream/${topic.name}/0`]))[`stream/${topic.name}/0`]).toBe('30');
  });
});
