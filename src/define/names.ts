import type { IssueCollector } from './issues.ts';

/** Names of definitions and features become column names, URL segments and store keys. */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** @internal Records an issue unless `name` is a non-empty identifier-like string. */
export function checkName(
  c: IssueCollector,
  path: readonly (string | number)[],
  name: unknown,
  what: string,
): boolean {
  if (typeof name !== 'string' || name === '') {
    c.add(
      'missing_field',
      path,
      `${what} is missing`,
      `set ${formatField(path)} to a name like 'card_stats'`,
    );
    return false;
  }
  if (!NAME_PATTERN.test(name)) {
    c.add(
      'invalid_name',
      path,
      `${what} '${name}' is not a valid name`,
      'use letters, digits and underscores, starting with a letter or underscore',
    );
    return false;
  }
  return true;
}

function formatField(path: readonly (string | number)[]): string {
  const last = path[path.length - 1];
  return typeof last === 'string' ? `'${last}'` : 'it';
}

/** @internal Quotes a list of names for messages: 'a', 'b', 'c'. */
export function quoteList(names: Iterable<string>): string {
  return [...names].map((n) => `'${n}'`).join(', ');
}
