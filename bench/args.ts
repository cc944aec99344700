/**
 * The benchmarks' option reader: `--name value` from `argv`, or `fallback` when absent.
 *
 * @example
 * const get = optionReader(process.argv.slice(2));
 * const events = Number(get('events', '200000'));
 */
export function optionReader(argv: readonly string[]): (name: string, fallback: string) => string {
  return (name, fallback) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
  };
}
