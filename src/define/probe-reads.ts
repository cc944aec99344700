import { closestName } from './closest-name.ts';
import type { IssueCollector } from './issues.ts';
import { quoteList } from './names.ts';
import { sourceColumns } from './normalize-source.ts';
import type { ColumnType, DerivationDef, JoinPartDef, OpName, SourceDef } from './types.ts';

/**
 * Definition-time probes of the functions in definitions (a source's derived columns and filter, a join's
 * derivations) for reads of names their arguments never have: a typo (`r.amont`, a feature renamed since)
 * reads undefined on every row, which the backfill and serving turn into null (a filter, into dropping or
 * keeping every event) without any error. Each function is called twice on read-only stand-ins holding
 * typed sample values (empty/zero/false with nullable columns null, then non-empty/one/true), which record
 * any read of another name; what the function returns or throws on them is ignored. Only the branches the
 * samples take are seen, so a clean probe proves nothing, but a reported read is a real one.
 */

/** Names no row or features object has that code reads anyway (promise checks, JSON, prototype methods). */
const IGNORED = new Set([
  'then',
  'toJSON',
  'constructor',
  'asymmetricMatch',
  '$$typeof',
  'nodeType',
  'inspect',
]);

/** A read-only object of `values` that adds to `unknown` each string key read that it lacks. */
function recordingView(values: Record<string, unknown>, unknown: Set<string>): Record<string, unknown> {
  const readOnly = (): never => {
    throw new TypeError('rows are read-only');
  };
  return new Proxy(values, {
    get(target, name, receiver) {
      if (
        typeof name === 'string' &&
        !Object.hasOwn(target, name) &&
        !IGNORED.has(name) &&
        !(name in Object.prototype)
      )
        unknown.add(name);
      return Reflect.get(target, name, receiver);
    },
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
  });
}

/**
 * The names `fn` read from each of its arguments that the argument lacks, calling it once per variant
 * (`args(variant)`: the sample values of each argument, fresh objects).
 */
function unknownReads(
  fn: (...args: never[]) => unknown,
  args: (variant: 0 | 1) => Record<string, unknown>[],
): Set<string>[] {
  const out: Set<string>[] = [];
  for (const variant of [0, 1] as const) {
    const values = args(variant);
    values.forEach((_, i) => (out[i] ??= new Set()));
    try {
      const result = (fn as (...a: unknown[]) => unknown)(...values.map((v, i) => recordingView(v, out[i]!)));
      // An async function's rejection is its own business: only its reads count.
      if (result instanceof Promise) result.catch(() => {});
    } catch {
      // Sample values may well make a function throw (e.g. a null it does not guard): not what is probed.
    }
  }
  return out;
}

const SAMPLE_TIME = Date.UTC(2024, 0, 1);

function sample(type: ColumnType, variant: 0 | 1): string | number | boolean {
  switch (type) {
    case 'string':
      return variant === 0 ? '' : 'a';
    case 'int':
    case 'float':
      return variant;
    case 'bool':
      return variant === 1;
    case 'timestamp':
      return SAMPLE_TIME + variant;
  }
}

function sampleRow(
  columns: ReadonlyMap<string, { type: ColumnType; nullable: boolean }>,
  variant: 0 | 1,
): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [name, c] of columns) row[name] = variant === 0 && c.nullable ? null : sample(c.type, variant);
  return row;
}

/** A feature value of `op` (DESIGN §1, as `OpValue` types it): empty-window values, then filled ones. */
function sampleFeature(op: OpName, input: ColumnType | undefined, variant: 0 | 1): unknown {
  if (op === 'count' || op === 'unique_count') return variant;
  if (op === 'histogram') return variant === 0 ? {} : { a: 1 };
  if (variant === 0) return null;
  if (op === 'approx_percentile') return [1];
  const value = sample(input ?? 'float', 1);
  return op === 'first_k' || op === 'last_k' || op === 'top_k' || op === 'bottom_k' ? [value] : value;
}

/** "did you mean 'x'? " and the known names (at most `LISTED`), for a fix line. */
function hint(name: string, known: readonly string[], what: string): string {
  const close = closestName(name, known);
  const listed =
    known.length <= LISTED
      ? quoteList(known)
      : `${quoteList(known.slice(0, LISTED))} and ${known.length - LISTED} more`;
  return `${close === null ? '' : `did you mean '${close}'? `}${what}: ${known.length === 0 ? 'none' : listed}`;
}
const LISTED = 30;

/**
 * Probes a source's derived columns (each sees the schema columns and the derived columns declared before
 * it) and its filter (all columns), recording an `unknown_column` issue per name one reads that its row
 * lacks.
 */
export function probeSourceFunctions(source: SourceDef, c: IssueCollector): void {
  const all = sourceColumns(source);
  const names = [...all.keys()];
  const derivedNames = Object.keys(source.derived);
  const schemaCount = names.length - derivedNames.length;
  derivedNames.forEach((column, k) => {
    const seen = new Map(names.slice(0, schemaCount + k).map((n) => [n, all.get(n)!]));
    const [unknown] = unknownReads(source.derived[column]!.fn, (v) => [sampleRow(seen, v)]);
    for (const name of unknown!) {
      const later = derivedNames.indexOf(name);
      if (later >= k)
        c.add(
          'unknown_column',
          ['derive', column, 'fn'],
          `derived column '${column}' reads row.${name}, ${later === k ? 'itself' : 'a derived column declared after it'}: undefined there, since each derived column sees the schema columns and the derived columns declared before it`,
          later === k
            ? `compute '${column}' from other columns`
            : `declare '${name}' before '${column}' in derive`,
        );
      else
        c.add(
          'unknown_column',
          ['derive', column, 'fn'],
          `derived column '${column}' reads row.${name}, which source '${source.name}' does not have: it is undefined in every event`,
          hint(name, [...seen.keys()], 'the columns it can read are'),
        );
    }
  });
  if (source.filter !== undefined) {
    const [unknown] = unknownReads(source.filter, (v) => [sampleRow(all, v)]);
    for (const name of unknown!)
      c.add(
        'unknown_column',
        ['filter'],
        `the filter reads row.${name}, which source '${source.name}' does not have: it is undefined in every event, so the filter drops or keeps them all alike`,
        hint(name, names, 'the columns are'),
      );
  }
}

/**
 * Probes a join's derivations: their first argument has the parts' features (not other derivations, as
 * the backfill and serving call them), the second the left source's columns (`left`: undefined skips the
 * row, e.g. when the left source is broken). Records an issue per name one reads that its argument lacks.
 */
export function probeDerivations(
  derivations: readonly DerivationDef[],
  parts: readonly JoinPartDef[],
  left: { readonly name: string; readonly columns: ReturnType<typeof sourceColumns> } | undefined,
  c: IssueCollector,
): void {
  if (derivations.length === 0) return;
  const features: { name: string; op: OpName; input: ColumnType | undefined }[] = [];
  for (const part of parts) {
    const columns = sourceColumns(part.groupBy.source);
    for (const agg of part.groupBy.aggregations) {
      const input = agg.input === null ? undefined : columns.get(agg.input)?.type;
      for (const name of agg.names)
        features.push({ name: part.prefix ? `${part.prefix}_${name}` : name, op: agg.op, input });
    }
  }
  const featureNames = features.map((f) => f.name);
  const derivationNames = new Set(derivations.map((d) => d.name));
  for (const d of derivations) {
    const [fromFeatures, fromRow] = unknownReads(d.fn, (v) => [
      Object.fromEntries(features.map((f) => [f.name, sampleFeature(f.op, f.input, v)])),
      left === undefined ? {} : sampleRow(left.columns, v),
    ]);
    const path = ['derive', d.name, 'fn'];
    for (const name of fromFeatures!) {
      if (derivationNames.has(name))
        c.add(
          'unknown_feature',
          path,
          `derivation '${d.name}' reads feature '${name}', a derivation: undefined there, since derivations see the parts' features only`,
          `compute it from the features in '${d.name}' too (a shared function both call)`,
        );
      else
        c.add(
          'unknown_feature',
          path,
          `derivation '${d.name}' reads feature '${name}', which the join's parts do not produce: it is undefined for every row`,
          hint(name, featureNames, "the parts' features are"),
        );
    }
    if (left !== undefined)
      for (const name of fromRow!)
        c.add(
          'unknown_column',
          path,
          `derivation '${d.name}' reads row.${name}, which left source '${left.name}' does not have: it is undefined for every row`,
          hint(name, [...left.columns.keys()], 'the left columns are'),
        );
  }
}
