import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Vitest's default is one file at a time on a 2-core machine (cores - 1). Much of this suite waits
    // (servers, child processes, timeouts) rather than computes, so two files at a time keep both cores of
    // CI's VM busy.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
});
