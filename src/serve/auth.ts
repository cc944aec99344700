import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Builds a bearer-token check that compares in constant time, so response timing leaks nothing about
 * how much of a guessed token was right. Both sides are hashed first because `timingSafeEqual` needs
 * equal lengths and comparing lengths directly would leak the token's length.
 *
 * @example
 * const allowed = bearerCheck('s3cret');
 * allowed('Bearer s3cret'); // true
 * allowed('Bearer nope');   // false
 * bearerCheck(undefined)('anything'); // true: no token configured, auth is off
 */
export function bearerCheck(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined || token === '') return () => true;
  const expected = digest(token);
  return (authorization) => {
    if (authorization === undefined) return false;
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match === null) return false;
    return timingSafeEqual(digest(match[1]!), expected);
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
