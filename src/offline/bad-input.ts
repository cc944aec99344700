/** What to do with a malformed row: stop with an error (default) or skip it and count it. */
export type BadRowPolicy = 'fail' | 'skip';

/** Where a malformed value was found. */
export interface BadRowLocation {
  readonly source: string;
  readonly file: string;
  /** 1-based data row within the file (header lines not counted); null for whole-file problems. */
  readonly row: number | null;
  readonly column: string | null;
}

/**
 * Bad input (DESIGN §1): names the source, the file, the row and the column, what is wrong and the fix.
 *
 * @example
 * throw new BadInputError({ source: 'charges', file: 'a.csv', row: 3, column: 'amount' },
 *   "value 'abc' is not a float", 'fix the file or rerun with --on-bad-row skip');
 */
export class BadInputError extends Error {
  readonly location: BadRowLocation;

  constructor(location: BadRowLocation, problem: string, fix: string, options?: { cause?: unknown }) {
    const where = [
      `source '${location.source}'`,
      `file ${location.file}`,
      location.row === null ? null : `row ${location.row}`,
      location.column === null ? null : `column '${location.column}'`,
    ]
      .filter((part) => part !== null)
      .join(', ');
    super(`Bad input in ${where}: ${problem}. Fix: ${fix}.`, options);
    this.name = 'BadInputError';
    this.location = location;
  }
}

export const SKIP_HINT = 'correct the value, or rerun with --on-bad-row skip to skip and count such rows';
