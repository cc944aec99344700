/**
 * Child process for the kill -9 upload test (redis-upload.test.ts): uploads the fixtures' by_user group-by
 * from `<repoDir>/data` into a store, printing `done` at the end. Usage: upload-child-main.ts
 * <storeConfigJson> <repoDir> <until> <entitiesPerCommit> [<crashPointJson>]: with a crash point
 * (crash-child.ts `CrashPoint`) it SIGKILLs itself at that Redis command (crash-points.ts).
 */
import { openStore } from '../../src/online/open-store.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import type { CrashPoint } from './crash-child.ts';
import { installCrash } from './crash-points.ts';
import { byUser } from './fixtures.ts';

const [config, repoDir, until, perCommit, crash] = process.argv.slice(2);
if (crash) installCrash(JSON.parse(crash) as CrashPoint);
const store = openStore(JSON.parse(config));
await uploadGroupBy({
  groupBy: byUser,
  until: Number(until),
  store,
  baseDir: repoDir,
  entitiesPerCommit: Number(perCommit),
});
process.stdout.write('done\n');
await store.close();
