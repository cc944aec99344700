/**
 * Builds a bearer-token check that compares in constant time, so response timing leaks nothing about
 * how much of a guessed token was right, nor the token's length: the loop always runs over the expected
 * token's length and has no early exit (`timingSafeEqual` needs equal lengths, and hashing both sides to
 * get them cost a hash object and two digests per request).
 *
 * @example
 * const allowed = bearerCheck('s3cret');
 * allowed('Bearer s3cret'); // true
 * allowed('Bearer nope');   // false
 * bearerCheck(undefined)('anything'); // true: no token configured, auth is off
 */
export function bearerCheck(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined || token === '') return () => true;
  return (authorization) => {
    if (authorization === undefined) return false;
    const match = BEARER.exec(authorization.trim());
    return match !== null && sameText(match[1]!, token);
  };
}

const BEARER = /^Bearer\s+(.+)$/i;

/** `given === expected`, in time that depends only on `expected.length` (code units, XOR-accumulated). */
function sameText(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  const n = given.length;
  for (let i = 0; i < expected.length; i++)
    diff |= (n === 0 ? 0 : given.charCodeAt(i % n)) ^ expected.charCodeAt(i);
  return diff === 0;
}
