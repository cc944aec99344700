import type { DerivedColumnDef, Row, SourceDef } from '../define/types.ts';

/** A source's derived columns as an array, built once per source (hot loops avoid `for…in` per row). */
const derivedLists = new WeakMap<SourceDef, readonly (readonly [string, DerivedColumnDef])[]>();

/**
 * Applies a source's derived columns (in declaration order, each seeing the ones before it) to a row in
 * place, then its filter. Returns false when the filter rejects the row (it is then not an event).
 * `undefined` from a derived function means null. A throwing function is reported with the source, column
 * and `where` (a string, or a function called only on error so hot loops build no message per row), since a
 * silent null would hide a bug in the definition.
 *
 * @example
 * if (deriveAndFilter(charges, row, 'log offset 42')) update(row);
 */
export function deriveAndFilter(source: SourceDef, row: Row, where: string | (() => string)): boolean {
  deriveColumns(source, row, where);
  if (!source.filter) return true;
  try {
    return source.filter(row) === true;
  } catch (cause) {
    throw new Error(
      `source '${source.name}', filter threw at ${place(where)}: ${(cause as Error).message}. Fix the filter function (it must handle every valid row, including nulls).`,
      { cause },
    );
  }
}

/** The derived-column half of `deriveAndFilter` (no filter), e.g. for partition keys at ingest. */
export function deriveColumns(source: SourceDef, row: Row, where: string | (() => string)): void {
  let derived = derivedLists.get(source);
  if (derived === undefined) {
    derived = Object.entries(source.derived);
    derivedLists.set(source, derived);
  }
  for (let i = 0; i < derived.length; i++) {
    const [name, def] = derived[i];
    let v;
    try {
      v = def.fn(row);
    } catch (cause) {
      throw new Error(
        `source '${source.name}', derived column '${name}' threw at ${place(where)}: ${(cause as Error).message}. Fix the derive function (it must handle every valid row, including nulls).`,
        { cause },
      );
    }
    row[name] = v === undefined ? null : v;
  }
}

const place = (where: string | (() => string)) => (typeof where === 'string' ? where : where());
