import { renderIssues } from './render-issues.ts';

/** Machine-readable kinds of definition problems. */
export type IssueCode =
  | 'missing_field'
  | 'invalid_value'
  | 'invalid_name'
  | 'unknown_column'
  | 'unknown_feature'
  | 'op_type_mismatch'
  | 'bad_window'
  | 'bad_hop'
  | 'bad_param'
  | 'duplicate_name'
  | 'duplicate_window'
  | 'bad_key_mapping'
  | 'missing_file';

/** One problem found in a definition: what is wrong, where, and how to fix it. */
export interface Issue {
  readonly code: IssueCode;
  /** The definition it belongs to, e.g. `groupBy 'card_stats'`. */
  readonly definition: string;
  /** Field path inside the definition, e.g. `['aggregations', 2, 'input']`. */
  readonly path: readonly (string | number)[];
  readonly message: string;
  readonly fix: string;
  /** The feature repo file it comes from, relative to the repo folder (set by `loadRepo`). */
  readonly file?: string;
}

/**
 * Thrown when definitions are invalid. Lists every issue found, not just the first one.
 *
 * @example
 * try { loadRepo('features') } catch (e) { if (e instanceof TesseraDefinitionError) console.log(e.issues) }
 */
export class TesseraDefinitionError extends Error {
  readonly issues: readonly Issue[];

  constructor(issues: readonly Issue[], options?: { cause?: unknown }) {
    super(renderIssues(issues), options);
    this.name = 'TesseraDefinitionError';
    this.issues = Object.freeze([...issues]);
  }
}

/** @internal Collects issues for one definition, then throws them all at once. */
export class IssueCollector {
  readonly issues: Issue[] = [];

  constructor(readonly definition: string) {}

  add(code: IssueCode, path: readonly (string | number)[], message: string, fix: string): void {
    this.issues.push({ code, definition: this.definition, path: [...path], message, fix });
  }

  throwIfAny(): void {
    if (this.issues.length > 0) throw new TesseraDefinitionError(this.issues);
  }
}

/**
 * @internal Throws (even under loadRepo: there is no definition to return) when a builder got no spec
 * object, naming the builder, instead of a TypeError from reading its fields.
 */
export function requireSpecObject(c: IssueCollector, spec: unknown, builder: string, fields: string): void {
  if (typeof spec === 'object' && spec !== null && !Array.isArray(spec)) return;
  const got = spec === null ? 'null' : Array.isArray(spec) ? 'an array' : typeof spec;
  c.add(
    'invalid_value',
    [],
    `${builder}() expects a definition object, got ${got}`,
    `call ${builder}({ ${fields} }); if you pass a variable, check it is defined before this line`,
  );
  c.throwIfAny();
}
