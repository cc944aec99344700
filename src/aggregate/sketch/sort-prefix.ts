/**
 * Sorts `a[0, n)` ascending in place and returns `a` (read only its first `n` entries). Sketch encoders sort
 * a handful of register or bucket indices per changed tile: an insertion sort of a short prefix needs no
 * `subarray` view (an allocation per encoded tile); long prefixes take the native sort of a view.
 *
 * @example
 * const sorted = sortPrefix(scratch, n); // sorted[0] .. sorted[n - 1]
 */
export function sortPrefix(a: Int32Array, n: number): Int32Array {
  if (n > 32) {
    a.subarray(0, n).sort();
    return a;
  }
  for (let i = 1; i < n; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
  return a;
}
