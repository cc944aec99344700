import { opSpecs } from '../aggregate/ops/index.ts';
import type { AggSpec } from './aggregation-spec.ts';
import type { IssueCollector } from './issues.ts';
import { checkName } from './names.ts';
import type { AggregationDef, ColumnType, OpName, WindowDef } from './types.ts';
import { normalizeWindow } from './windows.ts';

/** @internal Turns a user aggregation into an `AggregationDef` of group-by `groupByName`, recording issues. */
export function normalizeAggregation(
  agg: AggSpec,
  groupByName: string,
  columns: Map<string, { type: string }> | undefined,
  columnHint: string,
  c: IssueCollector,
  path: (string | number)[],
): AggregationDef | undefined {
  if (typeof agg !== 'object' || agg === null || agg.kind !== 'aggSpec') {
    c.add(
      'invalid_value',
      path,
      'is not an aggregation',
      'use a helper such as count(...), sum(...), lastK(...)',
    );
    return undefined;
  }
  const spec = opSpecs[agg.op as OpName];
  const before = c.issues.length;
  if (!spec) {
    c.add(
      'invalid_value',
      [...path, 'op'],
      `unknown op '${agg.op}'`,
      'use a helper such as count(...), sum(...), lastK(...)',
    );
    return undefined;
  }
  const input = agg.input;
  if (input === null && agg.op !== 'count') {
    c.add(
      'missing_field',
      [...path, 'input'],
      `${agg.op} needs an input column`,
      `pass the column first, e.g. ${agg.op}('amount', {...})`,
    );
  } else if (input !== null) {
    const column = columns?.get(input);
    if (columns && !column) {
      c.add(
        'unknown_column',
        [...path, 'input'],
        `${agg.op} input column '${input}' is not in the source`,
        columnHint,
      );
    } else if (column && !spec.accepts(column.type as never)) {
      const accepted = COLUMN_TYPES.filter((t) => spec.accepts(t)).join(', ');
      c.add(
        'op_type_mismatch',
        [...path, 'input'],
        `${agg.op} cannot aggregate '${input}' of type ${column.type}`,
        `${agg.op} takes ${accepted} columns: use one of those, or add a derived column to the source (derive: {...})`,
      );
    }
  }
  checkParams(agg, spec.needs, c, path);

  const windows: WindowDef[] = [];
  const rawWindows = Array.isArray(agg.windows) ? agg.windows : [];
  if (rawWindows.length === 0) {
    c.add(
      'missing_field',
      [...path, 'windows'],
      'windows is missing or empty',
      "list at least one window, e.g. windows: ['1h', '1d']",
    );
  }
  rawWindows.forEach((input, w) => {
    const window = normalizeWindow(input, c, [...path, 'windows', w]);
    if (!window) return;
    const twin = windows.findIndex((o) => o.sizeMs === window.sizeMs && o.hopMs === window.hopMs);
    if (twin >= 0) {
      c.add(
        'duplicate_window',
        [...path, 'windows', w],
        `window '${window.label}' is the same as '${windows[twin]!.label}'`,
        'remove one of the two windows',
      );
    }
    windows.push(window);
  });

  let names: string[];
  if (agg.names !== undefined) {
    names = [...agg.names];
    if (names.length !== rawWindows.length) {
      c.add(
        'invalid_value',
        [...path, 'names'],
        `names has ${names.length} ${names.length === 1 ? 'name' : 'names'} for ${rawWindows.length} windows`,
        'give exactly one name per window, in window order',
      );
    }
    names.forEach((n, j) => checkName(c, [...path, 'names', j], n, 'feature name'));
  } else {
    const inputPart = input === null ? '' : `${input}_`;
    names = windows.map((w) => `${groupByName}_${inputPart}${agg.op}_${w.label}`);
  }
  if (c.issues.length > before) return undefined;
  return { kind: 'aggregation', op: agg.op, input, params: agg.params, windows, names };
}

const MAX_K = 10_000;
const COLUMN_TYPES: readonly ColumnType[] = ['string', 'int', 'float', 'bool', 'timestamp'];

function checkParams(
  agg: AggSpec,
  needs: 'none' | 'k' | 'percentiles',
  c: IssueCollector,
  path: (string | number)[],
): void {
  if (needs === 'k') {
    const k = agg.params.k;
    if (k === undefined) {
      c.add('bad_param', [...path, 'k'], `${agg.op} needs k`, `set k, e.g. { k: 5, windows: [...] }`);
    } else if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
      c.add('bad_param', [...path, 'k'], `k = ${k} is out of range`, `use a whole number from 1 to ${MAX_K}`);
    }
  } else if (needs === 'percentiles') {
    const ps = agg.params.percentiles;
    if (!Array.isArray(ps) || ps.length === 0) {
      c.add(
        'bad_param',
        [...path, 'percentiles'],
        `${agg.op} needs percentiles`,
        'set percentiles, e.g. { percentiles: [0.5, 0.95], windows: [...] }',
      );
    } else {
      ps.forEach((p, j) => {
        if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
          c.add(
            'bad_param',
            [...path, 'percentiles', j],
            `percentile ${p} is outside [0, 1]`,
            'write percentiles as fractions, e.g. 0.95 for p95',
          );
        } else if (ps.indexOf(p) !== j) {
          c.add(
            'bad_param',
            [...path, 'percentiles', j],
            `percentile ${p} is listed twice`,
            'list each percentile once',
          );
        }
      });
    }
  }
}
