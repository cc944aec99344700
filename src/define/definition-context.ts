import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TesseraDefinitionError, type Issue, type IssueCollector } from './issues.ts';

interface DefinitionContext {
  /** The directory relative source paths resolve against, so `data/x.parquet` means the repo's data folder. */
  readonly baseDir: string;
  /** While loadRepo imports a repo: its definition files (by real path → path as listed). */
  readonly repoFiles?: ReadonlyMap<string, string>;
  /** While loadRepo imports a repo: the broken definitions each repo file built during this run. */
  readonly built?: Map<string, object[]>;
}

/** What loadRepo's builders know about a definition they returned: its file and, if broken, why. */
interface DefinitionRecord {
  /** The repo file (absolute, as loadRepo listed it) whose code called the builder. */
  readonly file: string;
  /** Its own problems (not those of the definitions it references). */
  readonly issues: readonly Issue[];
  /** Its unusable top-level fields: those with issues and those referencing a broken definition. */
  readonly broken: ReadonlySet<string>;
  /** The definitions it references (to find the broken ones behind a definition broken by a reference). */
  readonly refs: readonly object[];
  /** Creation order, to report issues in the order the repo defines them. */
  readonly seq: number;
}

interface DefinitionState {
  context: DefinitionContext | undefined;
  /**
   * Every definition a builder called from a repo file returned → its record. Kept with the definition, not
   * the file: a module cache (ESM, or CJS not re-evaluated) hands the same objects to later loads, of this
   * repo or of another one importing it, and their problems are still true.
   */
  readonly records: WeakMap<object, DefinitionRecord>;
  /**
   * The broken definitions each repo file built the last time it was evaluated, so one that is neither
   * exported nor referenced is reported by every load, not only by the one that evaluated the file.
   */
  readonly brokenByFile: Map<string, readonly object[]>;
  /** loadRepo runs one at a time: the context is process-wide (module evaluation has no async context). */
  queue: Promise<unknown>;
  seq: number;
}

// On globalThis, not in this module: repo files loaded through `require` get their own copy of Tessera's
// modules, and their builders must record into the same loadRepo run.
const state = ((globalThis as Record<symbol, DefinitionState | undefined>)[
  Symbol.for('tessera.definitionState.v2')
] ??= {
  context: undefined,
  records: new WeakMap(),
  brokenByFile: new Map(),
  queue: Promise.resolve(),
  seq: 0,
});

/**
 * Runs `fn` with `context`, after every earlier run has ended: two concurrent loads would otherwise see
 * each other's context (wrong base dirs, a context left set afterwards). `fn` must not start another run.
 */
function withContext<T>(context: DefinitionContext, fn: () => Promise<T>): Promise<T> {
  const run = state.queue.then(async () => {
    const previous = state.context;
    state.context = context;
    try {
      return await fn();
    } finally {
      state.context = previous;
    }
  });
  state.queue = run.catch(() => undefined);
  return run;
}

/** @internal Runs `fn` with `dir` as the base dir of sources defined during it (including async imports). */
export function withDefinitionBaseDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return withContext({ baseDir: dir }, fn);
}

/**
 * @internal Runs `fn` (loadRepo's imports) so that builders called from `files` record their issues instead
 * of throwing (see `finishDefinition`). `fn` gets `forget(files)`, to call before importing with the files
 * whose code will run again (CommonJS files not in the require cache): their earlier broken definitions
 * are gone, and those they build now replace them.
 */
export function withRepoDefinitions<T>(
  dir: string,
  files: ReadonlyMap<string, string>,
  fn: (forget: (files: readonly string[]) => void) => Promise<T>,
): Promise<T> {
  const built = new Map<string, object[]>();
  const forget = (evaluated: readonly string[]) => {
    for (const file of evaluated) state.brokenByFile.delete(file);
  };
  return withContext({ baseDir: dir, repoFiles: files, built }, async () => {
    try {
      return await fn(forget);
    } finally {
      for (const [file, defs] of built) state.brokenByFile.set(file, defs);
    }
  });
}

/** @internal */
export function definitionBaseDir(): string | undefined {
  return state.context?.baseDir;
}

/**
 * @internal Ends a builder; `refs` are the definitions `def` references, by field. Outside loadRepo it
 * throws the collected issues, and those behind a broken reference (a definition loadRepo returned despite
 * problems, imported again from the module cache). Inside, when called from a repo file, it records them
 * with the definition and returns it anyway, marked broken, so the file's other definitions and the files
 * importing it still load and get checked. Limitation: a builder called by a helper function defined in
 * another repo file is attributed to the helper's file (the innermost repo file on the stack).
 */
export function finishDefinition<T extends object>(
  def: T,
  c: IssueCollector,
  refs: readonly (readonly [field: string, ref: unknown])[] = [],
): T {
  const brokenRefs = refs.filter(([, ref]) => brokenFields(ref).size > 0);
  const context = state.context;
  const file = context?.repoFiles && callerFile(context.repoFiles);
  if (file === undefined) {
    if (c.issues.length > 0 || brokenRefs.length > 0)
      throw new TesseraDefinitionError([
        ...c.issues,
        ...brokenIssues(brokenRefs.map(([, r]) => r as object)),
      ]);
    return def;
  }
  const broken = new Set([...c.issues.map((i) => String(i.path[0] ?? '')), ...brokenRefs.map(([f]) => f)]);
  const objects = refs.map(([, r]) => r).filter((r): r is object => typeof r === 'object' && r !== null);
  state.records.set(def, { file, issues: [...c.issues], broken, refs: objects, seq: state.seq++ });
  if (broken.size > 0) {
    const built = context!.built!;
    built.set(file, [...(built.get(file) ?? []), def]);
  }
  return def;
}

/** @internal The unusable fields of a definition loadRepo returned despite problems; empty when it is fine. */
export function brokenFields(def: unknown): ReadonlySet<string> {
  return (typeof def === 'object' && def !== null && state.records.get(def)?.broken) || NONE;
}
const NONE: ReadonlySet<string> = new Set();

/** @internal The repo file (as loadRepo listed it) that built `def`, if a builder under loadRepo did. */
export function definitionFile(def: object): string | undefined {
  return state.records.get(def)?.file;
}

/** @internal The broken definitions repo `files` built the last time loadRepo evaluated them. */
export function brokenDefinitionsOf(files: readonly string[]): object[] {
  return files.flatMap((file) => state.brokenByFile.get(file) ?? []);
}

/**
 * @internal The issues of the broken definitions among `defs` and the definitions they reference, each
 * naming its file (by `fileName`; relative to the cwd by default), in file order (`fileOrder`, then the
 * others) and definition order. Each issue once: a CommonJS file whose import fails runs again for each
 * file importing it, building equal definitions. The one check of every entry taking definitions.
 */
export function brokenIssues(
  defs: Iterable<unknown>,
  fileName: (file: string) => string = (file) => relative(process.cwd(), file),
  fileOrder: readonly string[] = [],
): Issue[] {
  const seen = new Set<object>();
  const found: DefinitionRecord[] = [];
  const visit = (def: unknown) => {
    if (typeof def !== 'object' || def === null || seen.has(def)) return;
    seen.add(def);
    const record = state.records.get(def);
    if (!record || record.broken.size === 0) return;
    if (record.issues.length > 0) found.push(record);
    record.refs.forEach(visit);
  };
  for (const def of defs) visit(def);
  const order = (r: DefinitionRecord) => {
    const i = fileOrder.indexOf(r.file);
    return i < 0 ? fileOrder.length : i;
  };
  found.sort((a, b) => order(a) - order(b) || a.seq - b.seq);
  const issues: Issue[] = [];
  for (const record of found) {
    const file = fileName(record.file);
    for (const issue of record.issues) {
      if (!issues.some((r) => r.file === file && sameIssue(r, issue))) issues.push({ ...issue, file });
    }
  }
  return issues;
}

/** @internal Throws the issues of the broken definitions among `defs` (see `brokenIssues`). */
export function refuseBroken(defs: Iterable<unknown>): void {
  const issues = brokenIssues(defs);
  if (issues.length > 0) throw new TesseraDefinitionError(issues);
}

function sameIssue(a: Issue, b: Issue): boolean {
  return (
    a.definition === b.definition &&
    a.message === b.message &&
    a.path.length === b.path.length &&
    a.path.every((p, i) => p === b.path[i])
  );
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
