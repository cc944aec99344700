/**
 * Child process for the NATS kill -9 test: drains the fixtures' topic from a NATS JetStream log into a
 * store, printing one line per commit, and exits when caught up.
 * Usage: nats-crash-worker-main.ts <natsUrl> <streamPrefix> <storeConfigJson>
 */
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { events, groupBys } from './fixtures.ts';

const [natsUrl, prefix, storeJson] = process.argv.slice(2);
const log = openNatsLog(natsUrl, { prefix });
const store = openStore(JSON.parse(storeJson));
const [topic] = streamTopics(events, groupBys, 1);
const worker = await createStreamWorker({
  log,
  store,
  topic,
  partition: 0,
  batchSize: 23,
  onCommit: (c) => process.stdout.write(`commit ${c.nextOffset}\n`),
});
process.stdout.write(`start ${worker.stats().nextOffset}\n`);
await worker.drain();
process.stdout.write('done\n');
await store.close();
await log.close();
