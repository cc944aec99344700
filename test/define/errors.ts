import { TesseraDefinitionError } from '../../src/index.ts';

/** Runs `fn`, which must throw a TesseraDefinitionError, and returns it. */
export function definitionError(fn: () => unknown): TesseraDefinitionError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TesseraDefinitionError) return e;
    throw e;
  }
  throw new Error('expected a TesseraDefinitionError, but nothing was thrown');
}
