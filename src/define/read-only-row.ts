/**
 * What a derived column or filter that changes its input row fails with, offline (offline/js-pass.ts) and
 * online (online/source-transform.ts) alike: the change would reach one path's features and not the
 * other's, so both refuse it with the same words.
 */
export const readOnlyRowMessage = (source: string, column: string): string =>
  `source '${source}': a derived column or the filter assigned '${column}' of its input row; ` +
  `rows are read-only: add the value as a derived column instead`;
