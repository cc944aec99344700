import type { ColumnType, OpName, SourceFormat } from '../define/types.ts';

/**
 * The canonical plan of a feature repo: frozen plain JSON data with `kind` fields and no functions
 * (functions appear as their source text). Lists are sorted by name; serialize with `canonicalJson`.
 */
export interface Plan {
  readonly kind: 'plan';
  readonly version: 1;
  readonly sources: readonly PlanSource[];
  readonly groupBys: readonly PlanGroupBy[];
  readonly joins: readonly PlanJoin[];
}

export interface PlanSource {
  readonly kind: 'source';
  readonly name: string;
  readonly path: string;
  readonly format: SourceFormat;
  readonly timeColumn: string;
  readonly schema: Readonly<Record<string, { readonly type: ColumnType; readonly nullable: boolean }>>;
  /** In declaration order. */
  readonly derived: readonly {
    readonly name: string;
    readonly type: ColumnType;
    readonly nullable: boolean;
    readonly code: string;
  }[];
  readonly filter: string | null;
  readonly owner?: string;
  readonly description?: string;
}

export interface PlanWindow {
  readonly label: string;
  readonly sizeMs: number | null;
  readonly hopMs: number;
}

export interface PlanAggregation {
  readonly op: OpName;
  readonly input: string | null;
  readonly params: { readonly k?: number; readonly percentiles?: readonly number[] };
  readonly windows: readonly PlanWindow[];
  readonly names: readonly string[];
}

export interface PlanGroupBy {
  readonly kind: 'groupBy';
  readonly name: string;
  /** Semantic hash (sha256 hex), see `semanticHash`. */
  readonly hash: string;
  readonly source: string;
  readonly keys: readonly string[];
  readonly aggregations: readonly PlanAggregation[];
  readonly owner?: string;
  readonly description?: string;
}

export interface PlanJoinPart {
  readonly groupBy: string;
  readonly hash: string;
  readonly keyMapping: Readonly<Record<string, string>>;
  readonly prefix?: string;
}

export interface PlanJoin {
  readonly kind: 'join';
  readonly name: string;
  readonly left: string;
  readonly parts: readonly PlanJoinPart[];
  readonly derivations: readonly {
    readonly name: string;
    readonly type: ColumnType;
    readonly code: string;
  }[];
  /** Every output feature column in order (see `featureNames`). */
  readonly features: readonly string[];
  readonly owner?: string;
  readonly description?: string;
}
