/**
 * Child process for the kill -9 tests: drains the fixtures' topic from a log into a store, printing one line
 * per commit, and exits when caught up. Usage: crash-worker-main.ts <childLogJson> <storeConfigJson>
 * [<childOptionsJson>] (see crash-child.ts for the log forms and options). With a `crash` point it SIGKILLs
 * itself at that Redis command, printing `kill <phase> <at> <kind of command>` first.
 */
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import type { ChildLog, ChildOptions } from './crash-child.ts';
import { installCrash } from './crash-points.ts';
import { events, groupBys } from './fixtures.ts';

const [logJson, storeJson, optsJson] = process.argv.slice(2);
const spec = JSON.parse(logJson) as ChildLog;
const opts = JSON.parse(optsJson ?? '{}') as ChildOptions;
if (opts.crash) installCrash(opts.crash);
const log = spec.kind === 'file' ? openFileLog(spec.dir) : openNatsLog(spec.url, { prefix: spec.prefix });
const store = openStore(JSON.parse(storeJson));
const [topic] = streamTopics(events, groupBys, 1);
const worker = await createStreamWorker({
  log,
  store,
  topic,
  partition: 0,
  batchSize: opts.batchSize ?? 23,
  onCommit: (c) => process.stdout.write(`commit ${c.nextOffset}\n`),
});
process.stdout.write(`start ${worker.stats().nextOffset}\n`);
await worker.drain();
process.stdout.write('done\n');
await store.close();
await log.close();
