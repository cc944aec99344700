import { brokenFields, brokenIssues } from './definition-context.ts';
import { closestName } from './closest-name.ts';
import { IssueCollector, TesseraDefinitionError, type Issue } from './issues.ts';
import { quoteList } from './names.ts';
import { resolveSourceFiles, sourcePattern } from './source-files.ts';
import type { GroupByDef, JoinDef, SourceDef } from './types.ts';

/** All definitions of a feature repo. */
export interface RepoDefs {
  readonly sources: readonly SourceDef[];
  readonly groupBys: readonly GroupByDef[];
  readonly joins: readonly JoinDef[];
}

export interface ValidateRepoOptions {
  /** Also check that every source path matches at least one file (plan/backfill time, not definition time). */
  readonly checkFiles?: boolean;
  /** Directory relative source paths resolve against when a source has no `baseDir`. */
  readonly dir?: string;
  /** The file a definition comes from, named in its issues (loadRepo passes the repo file that built it). */
  readonly fileOf?: (def: object) => string | undefined;
  /**
   * With `checkFiles`: the column names of a source's first file, or a message saying why it cannot be read
   * (loadRepo reads the header with DuckDB; define/ reads no files itself). Schema columns the file lacks
   * are then reported here rather than at the first backfill.
   */
  readonly fileColumns?: (source: SourceDef, file: string) => Promise<readonly string[] | { error: string }>;
}

/**
 * Adds the definitions a repo references but does not list (a group-by's source, a join's parts and left),
 * deduplicated by identity, in first-seen order.
 *
 * @example
 * closeRepo({ sources: [], groupBys: [], joins: [fraudModel] }).groupBys.map((g) => g.name) // ['card_stats', ...]
 */
export function closeRepo(repo: RepoDefs): RepoDefs {
  const sources = new Set(repo.sources);
  const groupBys = new Set(repo.groupBys);
  const joins = new Set(repo.joins);
  for (const j of joins) {
    sources.add(j.left);
    for (const part of j.parts) groupBys.add(part.groupBy);
  }
  for (const g of groupBys) sources.add(g.source);
  return { sources: [...sources], groupBys: [...groupBys], joins: [...joins] };
}

/** One issue of definition `def`, naming its file when `fileOf` knows it. */
function defIssue(
  kind: string,
  def: { name: string },
  fileOf: ValidateRepoOptions['fileOf'],
  ...[code, path, message, fix]: Parameters<IssueCollector['add']>
): Issue {
  const c = new IssueCollector(`${kind} '${def.name}'`);
  c.add(code, path, message, fix);
  const file = fileOf?.(def);
  return file === undefined ? c.issues[0]! : { ...c.issues[0]!, file };
}

function duplicateNames(
  kind: string,
  defs: readonly { name: string }[],
  fileOf: ValidateRepoOptions['fileOf'],
  out: Issue[],
): void {
  const seen = new Map<string, { name: string }>();
  for (const def of defs) {
    const first = seen.get(def.name);
    if (first) {
      const [a, b] = [fileOf?.(first), fileOf?.(def)];
      const where =
        a === undefined || b === undefined ? '' : a === b ? ` (both in ${a})` : ` (in ${a} and ${b})`;
      out.push(
        defIssue(
          kind,
          def,
          fileOf,
          'duplicate_name',
          ['name'],
          `two different ${kind} definitions are named '${def.name}'${where}`,
          `rename one of them; ${kind} names must be unique in a repo`,
        ),
      );
    } else seen.set(def.name, def);
  }
}

/**
 * Cross-definition checks of a whole repo: unique names per kind and, with `checkFiles`, source paths
 * that match files; first, the issues of definitions loadRepo returned despite problems (imported again
 * from the module cache), whose checks are skipped. Returns the issues; see `validateRepo` to throw them.
 *
 * @example
 * await repoIssues({ sources: [charges], groupBys: [cardStats], joins: [] }, { checkFiles: true }) // []
 */
export async function repoIssues(repo: RepoDefs, options: ValidateRepoOptions = {}): Promise<Issue[]> {
  const closed = closeRepo(repo);
  const issues: Issue[] = brokenIssues([...closed.sources, ...closed.groupBys, ...closed.joins]);
  const usable = <T>(defs: readonly T[]) => defs.filter((d) => brokenFields(d).size === 0);
  const all = {
    sources: usable(closed.sources),
    groupBys: usable(closed.groupBys),
    joins: usable(closed.joins),
  };
  duplicateNames('eventSource', all.sources, options.fileOf, issues);
  duplicateNames('groupBy', all.groupBys, options.fileOf, issues);
  duplicateNames('join', all.joins, options.fileOf, issues);
  if (options.checkFiles) {
    for (const source of all.sources) {
      const files = await resolveSourceFiles(source, options.dir);
      if (files.length === 0) {
        issues.push(
          defIssue(
            'eventSource',
            source,
            options.fileOf,
            'missing_file',
            ['path'],
            `path '${source.path}' matches no file (looked for ${sourcePattern(source, options.dir)})`,
            'create the data (e.g. run the generator) or fix the path',
          ),
        );
      } else if (options.fileColumns) {
        const issue = fileColumnIssue(source, files[0]!, await options.fileColumns(source, files[0]!));
        if (issue !== null)
          issues.push(defIssue('eventSource', source, options.fileOf, 'unknown_column', ...issue));
      }
    }
  }
  return issues;
}

/** The schema columns `file` lacks (one issue for all), or why it cannot be read; null when it has them all. */
function fileColumnIssue(
  source: SourceDef,
  file: string,
  columns: readonly string[] | { error: string },
): [path: string[], message: string, fix: string] | null {
  if (!Array.isArray(columns))
    return [
      ['path'],
      `cannot read ${file}: ${(columns as { error: string }).error}`,
      "fix the file or the source's format",
    ];
  const names = columns as readonly string[];
  const have = new Set(names);
  const lacking = Object.keys(source.schema).filter((c) => !have.has(c));
  if (lacking.length === 0) return null;
  const hints = lacking.map((c) => {
    const close = closestName(c, names);
    return close === null ? `'${c}'` : `'${c}' (the file has '${close}')`;
  });
  return [
    ['schema'],
    `${file} has no column ${hints.join(', ')}; its columns: ${quoteList(names.slice(0, 20))}${names.length > 20 ? ', ...' : ''}`,
    "rename the schema column to the file's (or the file's header), or pass --no-check-files if the source's other files have it",
  ];
}

/**
 * Throws a `TesseraDefinitionError` listing every repo-level issue (see `repoIssues`).
 *
 * @example
 * await validateRepo(repo, { checkFiles: true, dir: '/repo/examples/fraud' });
 */
export async function validateRepo(repo: RepoDefs, options: ValidateRepoOptions = {}): Promise<void> {
  const issues = await repoIssues(repo, options);
  if (issues.length > 0) throw new TesseraDefinitionError(issues);
}
