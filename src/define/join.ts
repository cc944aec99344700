import { isColumnBuilder, type ColumnBuilder, type InferColumn } from './col.ts';
import { deepFreeze } from './deep-freeze.ts';
import { brokenFields, finishDefinition } from './definition-context.ts';
import type { EventSource, InferRow } from './event-source.ts';
import { checkKeyMapping } from './key-mapping.ts';
import { checkableColumns } from './normalize-source.ts';
import { IssueCollector, requireSpecObject } from './issues.ts';
import type {
  CheckParts,
  DerivedFeatures,
  JoinPartSpec,
  PartsFeatures,
  PartsKeyColumns,
} from './join-types.ts';
import { checkName } from './names.ts';
import { probeDerivations } from './probe-reads.ts';
import type { DerivationDef, GroupByDef, JoinDef, JoinPartDef, Row, SourceDef } from './types.ts';

/**
 * A normalized join that also carries its feature and left-row types, and the left columns its parts' keys
 * read (`K`, which a fetch must send), for inference (`_` is type-only).
 */
export type Join<
  N extends string = string,
  F = Record<string, unknown>,
  R = Row,
  K extends string = string,
> = JoinDef & {
  readonly name: N;
  readonly _?: { readonly features: F; readonly row: R; readonly keys: K };
};

export interface JoinSpec<
  N extends string,
  Left,
  Ps extends readonly JoinPartSpec[],
  D extends Record<string, ColumnBuilder>,
> {
  /** Unique join (model) name. */
  readonly name: N;
  /** Source whose rows carry the mapped key columns and a time column; backfills read left rows with its schema. */
  readonly left: Left;
  readonly parts: Ps;
  /** Features computed from the parts' features and the left row, in declaration order. */
  readonly derive?: {
    readonly [K in keyof D]: {
      readonly type: D[K];
      readonly fn: (features: PartsFeatures<Ps>, row: InferRow<Left>) => InferColumn<D[K]> | null | undefined;
    };
  };
  readonly owner?: string;
  readonly description?: string;
}

/**
 * Declares a model's feature vector: group-by parts looked up by keys of a left row, at the row's time,
 * plus derivations. Returns a frozen `JoinDef`; throws `TesseraDefinitionError` listing every problem (under
 * `loadRepo`, with the whole repo's).
 *
 * @example
 * export const fraudModel = join({
 *   name: 'fraud_model', left: charges,
 *   parts: [{ groupBy: cardStats, keys: { card_id: 'card_id' } },
 *           { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' }],
 *   derive: { ratio: { type: col.float(), fn: (f, row) => row.amount / (f.card_stats_amount_avg_1d ?? 1) } },
 * });
 * // columns: card_stats_..., m_merchant_stats_..., ratio
 */
export function join<
  const N extends string,
  Left extends EventSource<string, any>,
  const Ps extends readonly JoinPartSpec[],
  const D extends Record<string, ColumnBuilder> = {},
>(
  spec: JoinSpec<N, Left, Ps, D> & { readonly parts: NoInfer<CheckParts<Ps, InferRow<Left>>> },
): Join<N, PartsFeatures<Ps> & DerivedFeatures<D>, InferRow<Left>, PartsKeyColumns<Ps>> {
  const c = new IssueCollector(`join '${String((spec as { name?: unknown })?.name ?? '?')}'`);
  requireSpecObject(c, spec, 'join', 'name, left, parts');
  const def = normalizeJoin(spec as unknown as Record<string, unknown>, c);
  // The derivations' reads, once the features they may read are all known.
  const partsKnown =
    !c.issues.some((i) => i.path[0] === 'parts') &&
    def.parts.every((p) => brokenFields(p.groupBy).size === 0);
  if (partsKnown) {
    const leftColumns = checkableColumns(def.left);
    const left = leftColumns && { name: def.left.name, columns: leftColumns };
    probeDerivations(def.derivations, def.parts, left, c);
  }
  // A join over a broken source or group-by is unusable too, though it has no issue of its own.
  const refs = [['left', def.left] as const, ...def.parts.map((p) => ['parts', p.groupBy] as const)];
  return finishDefinition(deepFreeze(def), c, refs) as Join<N, any, any, any>;
}

function isKind<T extends { kind: string }>(value: unknown, kind: T['kind']): value is T {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === kind;
}

function normalizeJoin(spec: Record<string, unknown>, c: IssueCollector): JoinDef {
  checkName(c, ['name'], spec.name, 'join name');
  const left = spec.left;
  const leftColumns = checkableColumns(left);
  if (!isKind<SourceDef>(left, 'source'))
    c.add(
      'missing_field',
      ['left'],
      'left is not an event source',
      'pass the value returned by eventSource({...})',
    );

  const rawParts = Array.isArray(spec.parts) ? (spec.parts as Record<string, unknown>[]) : [];
  if (rawParts.length === 0) {
    c.add(
      'missing_field',
      ['parts'],
      'parts is missing or empty',
      "add parts, e.g. [{ groupBy: cardStats, keys: { card_id: 'card_id' } }]",
    );
  }
  const parts: JoinPartDef[] = [];
  const features = new Map<string, string>();
  const claim = (feature: string, owner: string, path: (string | number)[]) => {
    const previous = features.get(feature);
    if (previous !== undefined) {
      c.add(
        'duplicate_name',
        path,
        `feature '${feature}' comes from both ${previous} and ${owner}`,
        'give one of the parts a prefix, or rename one of the features',
      );
    } else features.set(feature, owner);
  };

  rawParts.forEach((part, i) => {
    const path = ['parts', i];
    const groupBy = part?.groupBy;
    if (!isKind<GroupByDef>(groupBy, 'groupBy')) {
      if (groupBy === undefined)
        c.add(
          'missing_field',
          [...path, 'groupBy'],
          'groupBy is undefined',
          'check the import and the export of the group-by: a name imported from a file that does not export it ' +
            '(a typo on either side, a missing `export`) is undefined, as is one read before its module finished ' +
            'loading (a circular import)',
        );
      else
        c.add(
          'missing_field',
          [...path, 'groupBy'],
          'groupBy is not a group-by',
          'pass the value returned by groupBy({...})',
        );
      return;
    }
    const prefix = part.prefix;
    if (prefix !== undefined) checkName(c, [...path, 'prefix'], prefix, 'prefix');
    const keyMapping = checkKeyMapping(part.keys, groupBy, left as SourceDef, leftColumns, c, [
      ...path,
      'keys',
    ]);
    const def: JoinPartDef = {
      kind: 'joinPart',
      groupBy,
      keyMapping,
      ...(typeof prefix === 'string' ? { prefix } : {}),
    };
    parts.push(def);
    // A broken group-by (under loadRepo) can list a feature twice: its own issue, not a clash of this join.
    for (const name of new Set(groupBy.aggregations.flatMap((agg) => agg.names))) {
      claim(prefixed(def.prefix, name), `parts[${i}] (${groupBy.name})`, path);
    }
  });

  const derivations: DerivationDef[] = [];
  const rawDerive = spec.derive ?? {};
  for (const [name, entry] of Object.entries(rawDerive as Record<string, { type?: unknown; fn?: unknown }>)) {
    const path = ['derive', name];
    if (!checkName(c, path, name, 'derivation name')) continue;
    if (!isColumnBuilder(entry?.type)) {
      c.add(
        'invalid_value',
        [...path, 'type'],
        'type is not a column type',
        'set type to col.float(), col.string(), ...',
      );
      continue;
    }
    if (typeof entry.fn !== 'function') {
      c.add('invalid_value', [...path, 'fn'], 'fn is not a function', 'set fn to (features, row) => value');
      continue;
    }
    claim(name, `derive.${name}`, path);
    derivations.push({
      kind: 'derivation',
      name,
      type: (entry.type as ColumnBuilder).type,
      fn: entry.fn as DerivationDef['fn'],
      code: entry.fn.toString(),
    });
  }

  return {
    kind: 'join',
    name: spec.name as string,
    left: left as SourceDef,
    parts,
    derivations,
    ...(typeof spec.owner === 'string' ? { owner: spec.owner } : {}),
    ...(typeof spec.description === 'string' ? { description: spec.description } : {}),
  };
}

/** Final column name of a part's feature. */
export function prefixed(prefix: string | undefined, name: string): string {
  return prefix ? `${prefix}_${name}` : name;
}
