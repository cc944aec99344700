import type { DerivedColumnDef, Row, SourceDef } from '../define/types.ts';

/** A source's derived columns as parallel arrays, built once per source (hot loops avoid `for…in` per row). */
interface DerivedList {
  readonly names: readonly string[];
  readonly defs: readonly DerivedColumnDef[];
}
const derivedLists = new WeakMap<SourceDef, DerivedList>();
/** The last source asked for: a worker or ingest call derives every row of one source in a row. */
let lastSource: SourceDef | null = null;
let lastList: DerivedList | null = null;

function derivedListOf(source: SourceDef): DerivedList {
  if (source === lastSource) return lastList!;
  let list = derivedLists.get(source);
  if (list === undefined) {
    const entries = Object.entries(source.derived);
    list = { names: entries.map(([name]) => name), defs: entries.map(([, def]) => def) };
    derivedLists.set(source, list);
  }
  lastSource = source;
  lastList = list;
  return list;
}

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
  const { names, defs } = derivedListOf(source);
  for (let i = 0; i < defs.length; i++) {
    let v;
    try {
      v = defs[i].fn(row);
    } catch (cause) {
      throw new Error(
        `source '${source.name}', derived column '${names[i]}' threw at ${place(where)}: ${(cause as Error).message}. Fix the derive function (it must handle every valid row, including nulls).`,
        { cause },
      );
    }
    row[names[i]] = v === undefined ? null : v;
  }
}

const place = (where: string | (() => string)) => (typeof where === 'string' ? where : where());
