import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { register as registerPlan } from './commands/plan.ts';
import { register as registerBackfill } from './commands/backfill.ts';
import { register as registerServe } from './commands/serve.ts';
import { register as registerFetch } from './commands/fetch.ts';
import { register as registerUpload } from './commands/upload.ts';
import { register as registerStream } from './commands/stream.ts';
import { register as registerUsage } from './commands/usage.ts';
import { register as registerPrune } from './commands/prune.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('tessera')
  .description('Tessera: TypeScript feature platform (definitions, backfills, online serving)')
  .version(version);

registerPlan(program);
registerBackfill(program);
registerServe(program);
registerFetch(program);
registerUpload(program);
registerStream(program);
registerUsage(program);
registerPrune(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Users get the message (definition errors already name the definition, field and fix), not a stack.
  const err = error as Error;
  process.stderr.write(`tessera: ${err?.message ?? String(error)}\n`);
  if (process.env.TESSERA_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
  process.exitCode = 1;
}
