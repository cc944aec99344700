import type { Issue } from './issues.ts';

/** Formats a field path like `aggregations[2].windows[0]`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out;
}

/**
 * The one place definition issues become text. Each issue is one line naming the file (when known), the
 * definition and the field, then the problem, then an indented fix line.
 */
export function renderIssues(issues: readonly Issue[]): string {
  const header =
    issues.length === 1
      ? 'Invalid feature definition:'
      : `Invalid feature definitions (${issues.length} issues):`;
  const lines = issues.map((issue) => {
    const parts = [issue.file, issue.definition, issue.path.length > 0 ? formatPath(issue.path) : undefined];
    const where = parts.filter((p) => p !== undefined).join(' › ');
    return `  - ${where}: ${issue.message}\n    fix: ${issue.fix}`;
  });
  return [header, ...lines].join('\n');
}
