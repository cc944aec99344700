import { fileURLToPath } from 'node:url';
import type { Issue, IssueCollector } from './issues.ts';

interface DefinitionContext {
  /** The directory relative source paths resolve against, so `data/x.parquet` means the repo's data folder. */
  readonly baseDir: string;
  /** While loadRepo imports a repo: its definition files (by real path → path as listed). */
  readonly repoFiles?: ReadonlyMap<string, string>;
}

interface DefinitionState {
  context: DefinitionContext | undefined;
  /** Issues recorded while evaluating each repo file: an imported module is cached and does not run again. */
  readonly issues: Map<string, Issue[]>;
  /** Definitions returned despite problems → their unusable top-level fields (own issues, broken references). */
  readonly broken: WeakMap<object, ReadonlySet<string>>;
  /** Definitions built while loading a repo → the repo file that built them. */
  readonly files: WeakMap<object, string>;
}

// On globalThis, not in this module: repo files loaded through `require` get their own copy of Tessera's
// modules, and their builders must record into the same loadRepo run.
const state = ((globalThis as Record<symbol, DefinitionState | undefined>)[
  Symbol.for('tessera.definitionState.v1')
] ??= { context: undefined, issues: new Map(), broken: new WeakMap(), files: new WeakMap() });

async function withContext<T>(context: DefinitionContext, fn: () => Promise<T>): Promise<T> {
  const previous = state.context;
  state.context = context;
  try {
    return await fn();
  } finally {
    state.context = previous;
  }
}

/** @internal Runs `fn` with `dir` as the base dir of sources defined during it (including async imports). */
export function withDefinitionBaseDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return withContext({ baseDir: dir }, fn);
}

/**
 * @internal Runs `fn` (loadRepo's imports) so that builders called from `files` record their issues instead
 * of throwing (see `finishDefinition`); `recordedIssues` and `definitionFile` read what they recorded.
 */
export function withRepoDefinitions<T>(
  dir: string,
  files: ReadonlyMap<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  return withContext({ baseDir: dir, repoFiles: files }, fn);
}

/** @internal */
export function definitionBaseDir(): string | undefined {
  return state.context?.baseDir;
}

/**
 * @internal Ends a builder. Outside loadRepo it throws the collected issues. Inside, when called from a repo
 * file, it records them under that file and returns the definition anyway, marked broken (with `brokenRefs`,
 * its fields whose referenced definition is broken), so the file's other definitions and the files importing
 * it still load and get checked.
 */
export function finishDefinition<T extends object>(
  def: T,
  c: IssueCollector,
  brokenRefs: readonly string[] = [],
): T {
  const files = state.context?.repoFiles;
  const file = files && callerFile(files);
  if (file === undefined) {
    c.throwIfAny();
    return def;
  }
  state.files.set(def, file);
  const broken = new Set([...c.issues.map((i) => String(i.path[0] ?? '')), ...brokenRefs]);
  if (broken.size > 0) state.broken.set(def, broken);
  const recorded: Issue[] = state.issues.get(file) ?? [];
  // `require` evaluates a module that threw again on each import: record each issue once.
  for (const issue of c.issues) if (!recorded.some((r) => sameIssue(r, issue))) recorded.push(issue);
  state.issues.set(file, recorded);
  return def;
}

function sameIssue(a: Issue, b: Issue): boolean {
  return (
    a.definition === b.definition &&
    a.message === b.message &&
    a.path.length === b.path.length &&
    a.path.every((p, i) => p === b.path[i])
  );
}

/** @internal The unusable fields of a definition loadRepo returned despite problems; empty when it is fine. */
export function brokenFields(def: unknown): ReadonlySet<string> {
  return (typeof def === 'object' && def !== null && state.broken.get(def)) || NONE;
}
const NONE: ReadonlySet<string> = new Set();

/** @internal The issues builders recorded while `file` was evaluated by loadRepo. */
export function recordedIssues(file: string): readonly Issue[] {
  return state.issues.get(file) ?? [];
}

/** @internal The repo file (as loadRepo listed it) that built `def`, if loadRepo built it. */
export function definitionFile(def: object): string | undefined {
  return state.files.get(def);
}

/** The innermost caller on the stack that is one of `files` (the repo file calling the builder). */
function callerFile(files: ReadonlyMap<string, string>): string | undefined {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  Error.prepareStackTrace = (_error, sites) => sites;
  Error.stackTraceLimit = 100;
  try {
    for (const site of new Error().stack as unknown as NodeJS.CallSite[]) {
      const name = site.getFileName();
      const path = name?.startsWith('file:') ? fileURLToPath(name) : name;
      const file = path && files.get(path);
      if (file) return file;
    }
    return undefined;
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
}
