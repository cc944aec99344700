/**
 * Chooses a partition for a partition key with 32-bit FNV-1a over UTF-16 code units. Fixed and documented
 * so every producer (HTTP ingest, replay, other languages) routes an entity to the same partition.
 *
 * @example
 * partitionOf('card_1', 4); // a stable number in 0..3
 */
export function partitionOf(partitionKey: string, partitions: number): number {
  if (partitions === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < partitionKey.length; i++) {
    h ^= partitionKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
