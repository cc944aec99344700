/**
 * Which of `n` backfill partitions a left row belongs to (`--partition i/N`), from the values of its
 * partition key (the left columns mapped by the join's first part, in that group-by's key order).
 *
 * Definition, so other tools can reproduce it: each value becomes its text as DuckDB casts it to
 * VARCHAR (`card_7`, `42`, `1.5`, `true`; null becomes the empty string), the texts are joined with U+001F, the UTF-8 bytes are hashed with 32-bit FNV-1a
 * (offset basis 2166136261, prime 16777619), and the partition is `hash mod n`.
 *
 * @example
 * partitionOf(['card_42'], 4); // a number in 0..3, the same on every machine
 */
export function partitionOf(values: readonly unknown[], n: number): number {
  const text = values.map((v) => (v === null || v === undefined ? '' : String(v))).join('\u001f');
  const bytes = encoder.encode(text);
  let hash = 2166136261;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash % n;
}

const encoder = new TextEncoder();

/** A parsed `--partition i/N`. */
export interface PartitionSpec {
  readonly index: number;
  readonly count: number;
}

/**
 * Parses `i/N` (0 <= i < N).
 *
 * @example
 * parsePartition('2/8'); // { index: 2, count: 8 }
 */
export function parsePartition(text: string): PartitionSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new Error(
      `Invalid --partition '${text}': expected i/N with 0 <= i < N, e.g. 0/4 for the first of 4 jobs.`,
    );
  }
  return { index, count };
}
