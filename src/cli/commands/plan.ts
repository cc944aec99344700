import { rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { buildPlan } from '../../plan/build-plan.ts';
import { canonicalJson } from '../../plan/canonical-json.ts';
import { renderPlanSummary } from '../../plan/plan-summary.ts';
import { loadRepo } from '../load-repo.ts';

interface PlanOptions {
  readonly repo: string;
  readonly out?: string;
  readonly json?: boolean;
  readonly checkFiles: boolean;
}

/** `tessera plan`: compile a feature repo into its canonical plan and print a summary or the JSON. */
export function register(program: Command): void {
  program
    .command('plan')
    .description('compile a feature repo into its canonical JSON plan (with a semantic hash per group-by)')
    .option('--repo <dir>', 'feature repo folder with definition files', '.')
    .option('--out <file>', 'also write the canonical JSON plan to FILE')
    .option('--json', 'print the canonical JSON plan instead of the summary')
    .option('--no-check-files', 'skip checking that every source path matches files')
    .action(async (options: PlanOptions) => {
      const repo = await loadRepo(options.repo, { checkFiles: options.checkFiles });
      const plan = buildPlan(repo);
      const json = canonicalJson(plan, 2) + '\n';
      if (options.out) {
        // Write then rename so a reader never sees a half-written plan.
        const tmp = `${options.out}.tmp-${process.pid}`;
        await writeFile(tmp, json);
        await rename(tmp, options.out);
      }
      process.stdout.write(
        options.json ? json : renderPlanSummary(plan) + (options.out ? `\n\nWrote ${options.out}\n` : '\n'),
      );
    });
}
