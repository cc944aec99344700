import { readFileSync, realpathSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerTsxCjs } from 'tsx/cjs/api';
import {
  brokenDefinitionsOf,
  brokenFields,
  brokenIssues,
  definitionFile,
  withRepoDefinitions,
} from '../define/definition-context.ts';
import { TesseraDefinitionError, type Issue } from '../define/issues.ts';
import { renderIssues } from '../define/render-issues.ts';
import type { GroupByDef, JoinDef, SourceDef } from '../define/types.ts';
import { closeRepo, repoIssues, type RepoDefs } from '../define/validate-repo.ts';
import { openScratchDb, type ScratchDb } from '../offline/duck.ts';
import { describeFile, fileFormat } from '../offline/scan-sql.ts';

/** A loaded feature repo: its folder, the files imported, and every definition (referenced ones included). */
export interface LoadedRepo extends RepoDefs {
  readonly dir: string;
  readonly files: readonly string[];
}

export interface LoadRepoOptions {
  /** Check that every source path matches files (default true; plan and backfill need the data). */
  readonly checkFiles?: boolean;
}

const SKIP_DIRS = new Set(['node_modules', 'data']);
const DEFINITION_FILE = /\.(ts|mts|js|mjs)$/;
const NOT_DEFINITION = /\.(test|spec|test-d)\.[mc]?[tj]s$|\.d\.[mc]?ts$/;

async function definitionFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...(await definitionFiles(path)));
    } else if (entry.isFile() && DEFINITION_FILE.test(entry.name) && !NOT_DEFINITION.test(entry.name)) {
      out.push(path);
    }
  }
  return out.sort();
}

/** Thrown when a feature repo cannot be loaded: a missing folder or files that fail to import. */
export class RepoLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RepoLoadError';
  }
}

function kindOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null
    ? ((value as { kind?: unknown }).kind as string)
    : undefined;
}

/**
 * Imports every definition file of a feature repo folder (recursively; skipping node_modules, data, dot
 * folders and test files), collects the exported sources, group-bys and joins (deduplicated by identity),
 * adds the ones they reference, and validates the whole repo. Relative source paths resolve against `dir`.
 * Throws one `TesseraDefinitionError` with every problem of every file (each issue naming its file): while
 * the files load, the builders record their problems instead of throwing, so all definitions get checked.
 *
 * @example
 * const repo = await loadRepo('examples/fraud/features');
 * repo.joins.map((j) => j.name) // ['fraud_model']
 */
export async function loadRepo(dir: string, options: LoadRepoOptions = {}): Promise<LoadedRepo> {
  const root = resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new RepoLoadError(
      `feature repo '${dir}' is not a folder (resolved to ${root}); pass --repo with the folder holding your definition files`,
    );
  }
  const files = await definitionFiles(root);
  if (files.length === 0) {
    throw new RepoLoadError(
      `feature repo '${dir}' has no .ts or .js definition files; add files that export eventSource/groupBy/join definitions`,
    );
  }

  const sources = new Set<SourceDef>();
  const groupBys = new Set<GroupByDef>();
  const joins = new Set<JoinDef>();
  const failures = new Map<unknown, string>(); // error → first file that raised it (imports share cached errors)
  // Stack frames name a module by its real path (symlinks resolved), e.g. /private/tmp on macOS.
  const byPath = new Map(files.flatMap((f) => [[f, f] as const, [realpathSync(f), f] as const]));
  await withRepoDefinitions(root, byPath, async (forget) => {
    // CommonJS files not in the require cache (never loaded, or their import failed) run again: what they
    // built before is gone. ESM files run once per process.
    const cache = createRequire(root).cache;
    forget(files.filter((f) => !isEsm(f) && cache[realpathSync(f)] === undefined && cache[f] === undefined));
    for (const file of files) {
      let module: Record<string, unknown>;
      try {
        module = await importDefinitionFile(file);
      } catch (error) {
        // A file importing a broken one fails with its error again: the same object (ESM caches it) or,
        // through `require` (which evaluates a failed module again), an equal one. Each is reported once.
        const text = (error as Error)?.message ?? String(error);
        if (![...failures.keys()].some((e) => e === error || (e as Error)?.message === text))
          failures.set(error, relative(root, file));
        continue;
      }
      for (const value of Object.values(module)) {
        const kind = kindOf(value);
        if (kind === 'source') sources.add(value as SourceDef);
        else if (kind === 'groupBy') groupBys.add(value as GroupByDef);
        else if (kind === 'join') joins.add(value as JoinDef);
      }
    }
  });
  // Every broken definition this load reaches: those the repo files built (exported or not), and those the
  // exports reference, which an earlier failed load may have left in the module cache (another repo's too).
  const exported = [...brokenDefinitionsOf(files), ...sources, ...groupBys, ...joins];
  const issues = brokenIssues(exported, (file) => relative(root, file), files);
  if (failures.size > 0) throw loadFailure(failures, issues);

  // Broken definitions (and those referencing them) already have their issues; the repo-level checks run on
  // the rest, so one run also reports duplicate names and missing data.
  const usable = <T>(defs: Set<T>) => [...defs].filter((d) => brokenFields(d).size === 0);
  const repo = closeRepo({ sources: usable(sources), groupBys: usable(groupBys), joins: usable(joins) });
  const fileOf = (def: object) => {
    const file = definitionFile(def);
    return file === undefined ? undefined : relative(root, file);
  };
  const checkFiles = options.checkFiles ?? true;
  const headers = checkFiles ? fileHeaders() : null;
  try {
    issues.push(
      ...(await repoIssues(repo, {
        checkFiles,
        dir: root,
        fileOf,
        ...(headers ? { fileColumns: headers.columns } : {}),
      })),
    );
  } finally {
    await headers?.close();
  }
  if (issues.length > 0) throw new TesseraDefinitionError(issues);
  return { dir: root, files, ...repo };
}

/** Whether Node treats a .ts/.js file as ESM: by extension, else the nearest package.json's `type`. */
function isEsm(file: string): boolean {
  if (/\.m[tj]s$/.test(file)) return true;
  if (/\.c[tj]s$/.test(file)) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    try {
      return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).type === 'module';
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    }
    if (dirname(dir) === dir) return false;
  }
}

let tsxCjs: (() => unknown) | undefined;

/**
 * CommonJS repo files (no `"type": "module"` package.json above them) must load through `require`: a file
 * that `import()` loads and that another file `require`s would otherwise exist twice, and its definitions
 * would look like two different definitions with the same name.
 */
async function importDefinitionFile(file: string): Promise<Record<string, unknown>> {
  if (isEsm(file)) return import(pathToFileURL(file).href);
  tsxCjs ??= registerTsxCjs();
  return createRequire(file)(file) as Record<string, unknown>;
}

/**
 * A definition error from any copy of Tessera's code: a CommonJS repo file `require`s its own copy of the
 * package, whose `TesseraDefinitionError` is another class than this one.
 */
function isDefinitionError(e: unknown): e is TesseraDefinitionError {
  return (
    e instanceof TesseraDefinitionError ||
    ((e as Error)?.name === 'TesseraDefinitionError' && Array.isArray((e as TesseraDefinitionError).issues))
  );
}

/** The error for files that failed to import, with the `issues` builders recorded in the others. */
function loadFailure(failures: Map<unknown, string>, issues: readonly Issue[]): Error {
  const entries = [...failures.entries()];
  if (entries.every(([e]) => isDefinitionError(e))) {
    const thrown = entries.flatMap(([e, file]) =>
      (e as TesseraDefinitionError).issues.map((i) => ({ file, ...i })),
    );
    return new TesseraDefinitionError([...issues, ...thrown], { cause: entries[0]![0] });
  }
  const text = entries
    .map(
      ([e, file]) =>
        `  - ${file}: ${isDefinitionError(e) ? e.message.replace(/\n/g, '\n    ') : ((e as Error)?.message ?? String(e))}`,
    )
    .join('\n');
  const recorded = issues.length > 0 ? `\n${renderIssues(issues)}` : '';
  return new RepoLoadError(
    `could not load ${entries.length === 1 ? 'a feature repo file' : `${entries.length} feature repo files`}:\n${text}${recorded}`,
    {
      cause: entries[0]![0],
    },
  );
}

/** The column names of source files, read by DuckDB as the backfill reads them (one database, opened on first use). */
function fileHeaders(): {
  columns: (source: SourceDef, file: string) => Promise<readonly string[] | { error: string }>;
  close: () => Promise<void>;
} {
  let db: Promise<ScratchDb> | null = null;
  return {
    async columns(source, file) {
      try {
        db ??= openScratchDb({ memoryLimit: '256MB', threads: 1 });
        const format = fileFormat(source.format, file, source.name);
        return (await describeFile((await db).conn, format, file, source.name)).map((c) => c.name);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return { error: message.split('\n')[0]! };
      }
    },
    async close() {
      if (db !== null) (await db.catch(() => null))?.close();
    },
  };
}
