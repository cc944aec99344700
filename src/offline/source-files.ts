import { resolveSourceFiles, sourcePattern } from '../define/source-files.ts';
import type { SourceDef } from '../define/types.ts';

/**
 * The files of a source, sorted by path (which fixes the file index in
 * `seq = fileIndex * 2^32 + rowIndexInFile`), or an error naming the source when nothing matches.
 * Relative paths resolve against the source's own base dir, else `fallbackDir`.
 *
 * @example
 * await sourceFiles(charges, '/repo'); // ['/repo/data/charges/a.parquet', ...]
 */
export async function sourceFiles(
  source: SourceDef,
  fallbackDir: string,
  label = `Source '${source.name}'`,
): Promise<string[]> {
  const files = await resolveSourceFiles(source, fallbackDir);
  if (files.length === 0) {
    throw new Error(
      `${label}: path '${source.path}' matches no file (looked for ${sourcePattern(source, fallbackDir)}). ` +
        `Fix: check the path, or generate the data first.`,
    );
  }
  return files;
}
