import type { RedisClient } from '../../src/online/redis-client.ts';

/**
 * Every key matching `glob` on `client`: SCAN on each master of a Cluster (keys live on one master each),
 * on the one server otherwise. For tests that check which store keys a run left behind.
 *
 * @example
 * expect(await keysMatching(client, `${prefix}w{*`)).toEqual([]); // no redo log left
 */
export async function keysMatching(client: RedisClient, glob: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of 'nodes' in client ? client.nodes('master') : [client]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', glob, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}
