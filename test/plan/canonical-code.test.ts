import { describe, expect, it } from 'vitest';
import { canonicalCode } from '../../src/plan/canonical-code.ts';

describe('canonicalCode', () => {
  it('maps differently printed copies of one function to the same text', () => {
    const variants = [
      "(r) => r.channel !== 'pos' && r.amount > 5",
      'r=>r.channel!=="pos"&&r.amount>5',
      '(r) =>\n\t\tr.channel !== "pos" &&\n\t\tr.amount > 5',
      "(r) => { return r.channel !== 'pos' && r.amount > 5; }",
    ];
    expect(new Set(variants.map(canonicalCode))).toEqual(new Set(['r=>r.channel!=="pos"&&r.amount>5']));
  });

  it('keeps semantic differences, including inside strings', () => {
    expect(canonicalCode("(r) => r.c === 'a b'")).not.toBe(canonicalCode("(r) => r.c === 'a  b'"));
    expect(canonicalCode('(r) => r.amount > 5')).not.toBe(canonicalCode('(r) => r.amount >= 5'));
  });

  it('handles function expressions and method shorthand', () => {
    expect(canonicalCode('function (r) {\n  return r.a > 1;\n}')).toBe('function(r){return r.a>1}');
    const method = canonicalCode('fn(r) {\n  return r.a > 1;\n}');
    expect(method).toBe(canonicalCode('fn(r){return r.a>1}'));
    expect(method).toContain('r.a>1');
  });
});
