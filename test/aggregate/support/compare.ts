import { expect } from 'vitest';

/** Deep equality where floats may differ by relative 1e-9 (DESIGN §1) and everything else is exact. */
export function expectClose(actual: unknown, expected: unknown, where: string): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (Number.isInteger(expected) && Number.isInteger(actual) && Math.abs(expected) < 2 ** 53) {
      if (actual === expected) return;
    }
    const tol = 1e-9 * Math.max(Math.abs(expected), Math.abs(actual)) + 1e-12;
    if (Math.abs(actual - expected) > tol) expect.fail(`${where}: ${actual} != ${expected} (rel 1e-9)`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      expect.fail(`${where}: ${JSON.stringify(actual)} != ${JSON.stringify(expected)}`);
    }
    expected.forEach((e, i) => expectClose((actual as unknown[])[i], e, `${where}[${i}]`));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    expect(actual, where).toEqual(expected);
    return;
  }
  if (actual !== expected) expect.fail(`${where}: ${JSON.stringify(actual)} !== ${JSON.stringify(expected)}`);
}
