import { describe, expect, it } from 'vitest';
import { openScratchDb } from '../../src/offline/duck.ts';

describe('--memory-limit', () => {
  it('names the option and valid sizes when DuckDB refuses the value, and takes a valid one', async () => {
    await expect(openScratchDb({ memoryLimit: 'lots' })).rejects.toThrow(
      /^--memory-limit 'lots' is not a size DuckDB accepts \(.*\); use e\.g\. 4GB, 512MB or 8GiB$/,
    );
    const db = await openScratchDb({ memoryLimit: '512MB' });
    db.close();
  });
});
