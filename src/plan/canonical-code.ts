import { transformSync } from 'esbuild';

const cache = new Map<string, string>();

function minify(wrapped: string): string | undefined {
  try {
    return transformSync(wrapped, {
      loader: 'js',
      minifyWhitespace: true,
      minifySyntax: true,
      target: 'esnext',
    }).code.trim();
  } catch {
    return undefined;
  }
}

/**
 * The canonical source text of a user function (filter, derived column, derivation) for plans and hashes.
 * `fn.toString()` returns what the loader emitted: tsx minifies whitespace, vitest keeps formatting, so the
 * same definition would hash differently per runner. Re-printing with esbuild's whitespace and syntax
 * minifier maps both to one text; semantics-free differences (spacing, quotes, parens) disappear.
 *
 * @example
 * canonicalCode('(r) => r.channel !== \'pos\'') // 'r=>r.channel!=="pos"'
 */
export function canonicalCode(code: string): string {
  const hit = cache.get(code);
  if (hit !== undefined) return hit;
  // Assign to a global so the minifier cannot drop the expression as dead code.
  const expression = minify(`__f=(${code})`);
  let out: string;
  if (expression !== undefined && expression.startsWith('__f=(') && expression.endsWith(');')) {
    out = expression.slice('__f=('.length, -');'.length);
  } else {
    // Method shorthand (`fn(r) { ... }`) is not an expression on its own, but is inside an object literal.
    out = minify(`__f={${code}}`) ?? code.replace(/\s+/g, ' ').trim();
  }
  cache.set(code, out);
  return out;
}
