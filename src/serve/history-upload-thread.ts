import { parentPort, workerData } from 'node:worker_threads';
import { loadRepo } from '../cli/load-repo.ts';
import { uploadHistory } from './online-demo.ts';

/** The inside of `uploadHistoryInThread` (online-demo.ts): an error is thrown, so the thread dies with it. */
const { repoDir, dataDir } = workerData as { repoDir: string; dataDir: string };
const repo = await loadRepo(repoDir);
parentPort!.postMessage(await uploadHistory(repo, dataDir));
