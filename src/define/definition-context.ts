/**
 * The directory relative source paths resolve against for definitions created right now. `loadRepo` sets
 * it while importing a feature repo so `path: 'data/x.parquet'` means the repo's data folder, not the cwd.
 */
let currentBaseDir: string | undefined;

/** @internal Runs `fn` with `dir` as the base dir of sources defined during it (including async imports). */
export async function withDefinitionBaseDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const previous = currentBaseDir;
  currentBaseDir = dir;
  try {
    return await fn();
  } finally {
    currentBaseDir = previous;
  }
}

/** @internal */
export function definitionBaseDir(): string | undefined {
  return currentBaseDir;
}
