import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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

/**
 * `--help` / `-h`: prints the benchmark's leading doc comment (its options are documented there) and exits,
 * so asking for help never starts a run that preloads gigabytes.
 *
 * @example
 * exitOnHelp(process.argv.slice(2), import.meta.url);
 */
export function exitOnHelp(argv: readonly string[], moduleUrl: string): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  const source = readFileSync(fileURLToPath(moduleUrl), 'utf8');
  const doc = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '';
  console.log(
    doc
      .split('\n')
      .map((line) => line.replace(/^\s*\* ?/, ''))
      .join('\n')
      .trim(),
  );
  process.exit(0);
}
