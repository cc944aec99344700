import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { buildPlan } from '../../plan/build-plan.ts';
import { canonicalJson } from '../../plan/canonical-json.ts';
import { diffPlans } from '../../plan/diff-plans.ts';
import { renderPlanDiff } from '../../plan/diff-summary.ts';
import type { Plan } from '../../plan/plan-ir.ts';
import { renderPlanSummary } from '../../plan/plan-summary.ts';
import { loadRepo } from '../load-repo.ts';

interface PlanOptions {
  readonly repo: string;
  readonly out?: string;
  readonly json?: boolean;
  readonly checkFiles: boolean;
  readonly diff?: string;
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
    .option('--diff <file>', 'also print what changed since the plan JSON in FILE (e.g. the deployed one)')
    .action(async (options: PlanOptions) => {
      const repo = await loadRepo(options.repo, { checkFiles: options.checkFiles });
      const plan = buildPlan(repo);
      const json = canonicalJson(plan, 2) + '\n';
      // Read the old plan before --out may overwrite the same file.
      const previous = options.diff ? await readPlan(options.diff) : undefined;
      if (options.out) {
        // Write then rename so a reader never sees a half-written plan.
        const tmp = `${options.out}.tmp-${process.pid}`;
        await writeFile(tmp, json);
        await rename(tmp, options.out);
      }
      let text = options.json ? json : renderPlanSummary(plan) + '\n';
      if (previous && !options.json)
        text += `\nChanges since ${options.diff}\n${renderPlanDiff(diffPlans(previous, plan))}\n`;
      if (options.out && !options.json) text += `\nWrote ${options.out}\n`;
      process.stdout.write(text);
    });
}

async function readPlan(file: string): Promise<Plan> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(
      `cannot read plan '${file}': ${(error as Error).message}; pass a file written by 'tessera plan --out'`,
      { cause: error },
    );
  }
  if ((parsed as { kind?: unknown })?.kind !== 'plan') {
    throw new Error(
      `'${file}' is not a Tessera plan (no "kind": "plan"); pass a file written by 'tessera plan --out'`,
    );
  }
  return parsed as Plan;
}
