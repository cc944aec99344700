/**
 * The normalized definition objects every backend consumes.
 *
 * Builders in `define/` (eventSource, groupBy, join, aggregation helpers) validate user input and return
 * these frozen plain objects, each with a `kind` field. `plan/` turns them into canonical JSON with a
 * semantic hash; `offline/`, `online/` and `serve/` walk them. Runtime TS functions (row filters, derived
 * columns, join derivations) travel with the objects because they cannot be serialized.
 */

/** Logical column types. `timestamp` values are epoch milliseconds (UTC) once read. */
export type ColumnType = 'string' | 'int' | 'float' | 'bool' | 'timestamp';

/** A JS value of a column once read and normalized (ints and timestamps are JS numbers). */
export type Scalar = string | number | boolean;

/** One event or left row after reading: column name → normalized value (null when absent). */
export type Row = Record<string, Scalar | null>;

export interface ColumnDef<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly kind: 'column';
  readonly type: T;
  readonly nullable: N;
}

export type SchemaDef = Readonly<Record<string, ColumnDef>>;

/** File formats a source may read; `auto` picks by file extension. */
export type SourceFormat = 'parquet' | 'csv' | 'jsonl' | 'auto';

export interface DerivedColumnDef {
  readonly kind: 'derived';
  readonly type: ColumnType;
  readonly nullable: boolean;
  /** Computes the column from the row (raw schema columns plus derived columns declared before it). */
  readonly fn: (row: Row) => Scalar | null | undefined;
  /** Source text of `fn`, hashed into the plan so a changed function changes the semantic hash. */
  readonly code: string;
}

export interface SourceDef {
  readonly kind: 'source';
  readonly name: string;
  /** File path or glob, resolved against the feature repo root (or cwd) at read time. */
  readonly path: string;
  readonly format: SourceFormat;
  /** Column holding event time: a timestamp, an integer of epoch ms, or ISO-8601 text. */
  readonly timeColumn: string;
  /** Raw columns read from files (includes the time column). */
  readonly schema: SchemaDef;
  /** Derived columns in declaration order; computed after reading, before the filter. */
  readonly derived: Readonly<Record<string, DerivedColumnDef>>;
  /** Row filter: rows for which it returns false are not events. */
  readonly filter?: (row: Row) => boolean;
  readonly filterCode?: string;
  readonly owner?: string;
  readonly description?: string;
  /**
   * Directory a relative `path` resolves against (the feature repo dir when loaded by `loadRepo`, or set
   * explicitly); unset means the cwd. Not part of the semantic hash.
   */
  readonly baseDir?: string;
}

export type OpName =
  | 'count'
  | 'sum'
  | 'avg'
  | 'min'
  | 'max'
  | 'variance'
  | 'stddev'
  | 'first'
  | 'last'
  | 'first_k'
  | 'last_k'
  | 'top_k'
  | 'bottom_k'
  | 'unique_count'
  | 'approx_unique_count'
  | 'approx_percentile'
  | 'histogram';

/** Parameters some ops take: `k` for *_k ops, `percentiles` (in [0,1]) for approx_percentile. */
export interface OpParams {
  readonly k?: number;
  readonly percentiles?: readonly number[];
}

export interface WindowDef {
  readonly kind: 'window';
  /** As the user wrote it ('1h', '7d', 'lifetime'); used in feature names. */
  readonly label: string;
  /** Window size in ms; null for lifetime. */
  readonly sizeMs: number | null;
  /**
   * Hop in ms (DESIGN §1: default is the largest of 1d,1h,5m,1m,1s with size >= 12*hop; must divide size).
   * For lifetime windows the hop is 1d: it only decides tile granularity, not semantics.
   */
  readonly hopMs: number;
}

export interface AggregationDef {
  readonly kind: 'aggregation';
  readonly op: OpName;
  /** Input column (raw or derived); null only for `count` of events. */
  readonly input: string | null;
  readonly params: OpParams;
  readonly windows: readonly WindowDef[];
  /** Feature names (without join prefix), one per window: `{groupBy}_{input}_{op}_{window}` unless overridden. */
  readonly names: readonly string[];
}

export interface GroupByDef {
  readonly kind: 'groupBy';
  readonly name: string;
  readonly source: SourceDef;
  readonly keys: readonly string[];
  readonly aggregations: readonly AggregationDef[];
  readonly owner?: string;
  readonly description?: string;
}

export interface JoinPartDef {
  readonly kind: 'joinPart';
  readonly groupBy: GroupByDef;
  /** group-by key column → left column. */
  readonly keyMapping: Readonly<Record<string, string>>;
  readonly prefix?: string;
}

export interface DerivationDef {
  readonly kind: 'derivation';
  readonly name: string;
  readonly type: ColumnType;
  readonly fn: (features: Record<string, unknown>, row: Row) => unknown;
  readonly code: string;
}

export interface JoinDef {
  readonly kind: 'join';
  readonly name: string;
  /** Left rows: keys and a timestamp; backfills take the left file from the CLI, with this schema. */
  readonly left: SourceDef;
  readonly parts: readonly JoinPartDef[];
  readonly derivations: readonly DerivationDef[];
  readonly owner?: string;
  readonly description?: string;
}

/** One output feature column of a join, resolved: where its value comes from. */
export interface FeatureRef {
  /** Final column name, with the part's prefix. */
  readonly name: string;
  readonly partIndex: number;
  readonly aggregationIndex: number;
  readonly windowIndex: number;
}
