import type { Row, SourceDef } from '../define/types.ts';

/**
 * Applies a source's derived columns (in declaration order, each seeing the ones before it) to a row in
 * place, then its filter. Returns false when the filter rejects the row (it is then not an event).
 * `undefined` from a derived function means null. A throwing function is reported with the source, column
 * and log offset, since a silent null would hide a bug in the definition.
 *
 * @example
 * if (deriveAndFilter(charges, row, 'log offset 42')) update(row);
 */
export function deriveAndFilter(source: SourceDef, row: Row, where: string): boolean {
  for (const name in source.derived) {
    let v;
    try {
      v = source.derived[name].fn(row);
    } catch (cause) {
      throw new Error(
        `source '${source.name}', derived column '${name}' threw at ${where}: ${(cause as Error).message}. Fix the derive function (it must handle every valid row, including nulls).`,
        { cause },
      );
    }
    row[name] = v === undefined ? null : v;
  }
  if (!source.filter) return true;
  try {
    return source.filter(row) === true;
  } catch (cause) {
    throw new Error(
      `source '${source.name}', filter threw at ${where}: ${(cause as Error).message}. Fix the filter function (it must handle every valid row, including nulls).`,
      { cause },
    );
  }
}
