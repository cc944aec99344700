/** Two deployments of the online fixtures for the catch-up tests: `by_user` changes between them. */
import { count, groupBy } from '../../src/index.ts';
import { byUser, byUserKind, events } from './fixtures.ts';

/** The first version of `by_user`: another computation (so another store id) under the same name. */
export const byUserV1 = groupBy({
  name: 'by_user',
  source: events,
  keys: ['user'],
  aggregations: [count({ windows: ['1h', 'lifetime'] })],
});

export const versions = { v1: [byUserV1, byUserKind], v2: [byUser, byUserKind] } as const;
export type Version = keyof typeof versions;

/** Drains `runner`, collecting what its workers log (console.error) into `said` instead of printing it. */
export async function drainCollecting(
  runner: { drain(): Promise<void> },
  said: string[] = [],
): Promise<string[]> {
  const original = console.error;
  console.error = (m: string) => said.push(m);
  try {
    await runner.drain();
  } finally {
    console.error = original;
  }
  return said;
}
