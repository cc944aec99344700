/**
 * Child process for the catch-up kill -9 test: runs the stream workers of a deployment of the fixtures
 * (catch-up-fixtures.ts) over a configured store and log until caught up, printing `commit <next offset>
 * <catchup|main>` per commit, then `done`. Usage: catch-up-child.ts <onlineConfigJson> <version> <batchSize>
 */
import {
  openConfiguredLog,
  openConfiguredStore,
  type OnlineConfig,
} from '../../src/online/runtime-config.ts';
import { startStreamWorkers, type StreamRunner } from '../../src/online/stream-runner.ts';
import { versions, type Version } from './catch-up-fixtures.ts';
import { events } from './fixtures.ts';

const [configJson, version, batchSize] = process.argv.slice(2);
const config = JSON.parse(configJson) as OnlineConfig;
const store = openConfiguredStore(config);
const log = openConfiguredLog(config);
let runner: StreamRunner | null = null;
runner = await startStreamWorkers({
  sources: [events],
  groupBys: versions[version as Version],
  log,
  store,
  worker: {
    batchSize: Number(batchSize),
    onCommit: (c) => {
      const phase = runner?.stats()[0]?.catchingUp?.length ? 'catchup' : 'main';
      process.stdout.write(`commit ${c.nextOffset} ${phase}\n`);
    },
  },
  onError: (e) => process.stderr.write(`error: ${e.message}\n`),
});
process.stdout.write('start\n');
await runner.drain();
process.stdout.write('done\n');
await store.close();
await log.close();
