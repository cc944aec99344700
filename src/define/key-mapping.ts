import { brokenFields } from './definition-context.ts';
import type { IssueCollector } from './issues.ts';
import { quoteList } from './names.ts';
import { checkableColumns, type sourceColumns } from './normalize-source.ts';
import type { GroupByDef, SourceDef } from './types.ts';

/**
 * @internal Checks a join part's key mapping against the group-by keys and the left source; returns the
 * usable entries (group-by key -> left column).
 */
export function checkKeyMapping(
  raw: unknown,
  groupBy: GroupByDef,
  left: SourceDef,
  leftColumns: ReturnType<typeof sourceColumns> | undefined,
  c: IssueCollector,
  path: (string | number)[],
): Record<string, string> {
  if (typeof raw !== 'object' || raw === null) {
    const example = groupBy.keys.map((k) => `${k}: '${k}'`).join(', ');
    c.add(
      'missing_field',
      path,
      `keys is missing`,
      `map each key of '${groupBy.name}' to a left column: { ${example} }`,
    );
    return {};
  }
  const mapping = raw as Record<string, unknown>;
  const usable = Object.fromEntries(Object.entries(mapping).filter(([, v]) => typeof v === 'string'));
  // Under loadRepo a broken group-by still reaches here: with its keys broken, checks against them would
  // only repeat its own issue (the left columns are still checked); with its source broken, its key types
  // are unknown (checkableColumns).
  const keysBroken = brokenFields(groupBy).has('keys');
  const groupColumns = keysBroken ? undefined : checkableColumns(groupBy.source);
  for (const key of keysBroken ? [] : groupBy.keys) {
    if (!(key in mapping)) {
      c.add(
        'bad_key_mapping',
        path,
        `group-by key '${key}' of '${groupBy.name}' is not mapped`,
        `add ${key}: '<left column>'`,
      );
    }
  }
  for (const [key, column] of Object.entries(mapping)) {
    if (!keysBroken && !groupBy.keys.includes(key)) {
      c.add(
        'bad_key_mapping',
        [...path, key],
        `'${key}' is not a key of group-by '${groupBy.name}' (keys: ${quoteList(groupBy.keys)})`,
        `remove '${key}' from the mapping`,
      );
      continue;
    }
    const leftColumn = typeof column === 'string' ? leftColumns?.get(column) : undefined;
    if (typeof column !== 'string' || (leftColumns && !leftColumn)) {
      c.add(
        'unknown_column',
        [...path, key],
        `left column '${String(column)}' is not in source '${left?.name}'`,
        `map '${key}' to one of ${quoteList(leftColumns?.keys() ?? [])}`,
      );
      continue;
    }
    const keyType = groupColumns?.get(key)?.type;
    if (leftColumn && keyType && leftColumn.type !== keyType) {
      c.add(
        'bad_key_mapping',
        [...path, key],
        `left column '${column}' is ${leftColumn.type} but key '${key}' of '${groupBy.name}' is ${keyType}`,
        'map a left column of the same type, or derive one on the left source',
      );
    }
  }
  return usable as Record<string, string>;
}
