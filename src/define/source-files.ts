import { readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import type { SourceDef } from './types.ts';

const GLOB_CHARS = /[*?[{]/;

/** Absolute path or glob of a source: relative paths resolve against its `baseDir`, else `fallbackDir`, else cwd. */
export function sourcePattern(source: SourceDef, fallbackDir?: string): string {
  if (isAbsolute(source.path)) return source.path;
  return resolve(source.baseDir ?? fallbackDir ?? process.cwd(), source.path);
}

/** Converts one glob path segment (`*`, `?`, `[abc]`, `{a,b}`) to an anchored regex. */
function segmentRegex(segment: string): RegExp {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === '*') out += '[^/]*';
    else if (ch === '?') out += '[^/]';
    else if (ch === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        out += `[${segment
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (ch === '{') {
      const end = segment.indexOf('}', i + 1);
      if (end < 0) out += '\\{';
      else {
        out += `(?:${segment
          .slice(i + 1, end)
          .split(',')
          .map(escapeRegex)
          .join('|')})`;
        i = end;
      }
    } else out += escapeRegex(ch);
  }
  return new RegExp(`^${out}$`);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

async function listDir(dir: string): Promise<{ name: string; isDir: boolean; isFile: boolean }[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, isDir: e.isDirectory(), isFile: e.isFile() }));
  } catch {
    return []; // a missing directory simply matches nothing
  }
}

async function walk(dir: string, segments: readonly string[], out: string[]): Promise<void> {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  const last = rest.length === 0;
  if (head === '**') {
    await walk(dir, rest, out); // '**' matches zero directories
    for (const entry of await listDir(dir)) {
      if (entry.isDir && !entry.name.startsWith('.')) await walk(join(dir, entry.name), segments, out);
    }
    return;
  }
  if (!GLOB_CHARS.test(head)) {
    const path = join(dir, head);
    if (last) {
      const parent = await listDir(dir);
      if (parent.some((e) => e.name === head && e.isFile)) out.push(path);
    } else await walk(path, rest, out);
    return;
  }
  const regex = segmentRegex(head);
  for (const entry of await listDir(dir)) {
    if (!regex.test(entry.name) || (entry.name.startsWith('.') && !head.startsWith('.'))) continue;
    if (last ? entry.isFile : entry.isDir) {
      if (last) out.push(join(dir, entry.name));
      else await walk(join(dir, entry.name), rest, out);
    }
  }
}

/**
 * The files a source reads, as sorted absolute paths (sorted so file order, and with it source order, is
 * stable). Supports `*`, `?`, `**`, `[abc]` and `{a,b}`; hidden entries match only explicit dot patterns.
 *
 * @example
 * await resolveSourceFiles(charges, '/repo/examples/fraud') // ['/repo/examples/fraud/data/charges/part-0.parquet', ...]
 */
export async function resolveSourceFiles(source: SourceDef, fallbackDir?: string): Promise<string[]> {
  const pattern = sourcePattern(source, fallbackDir);
  const parts = pattern.split(sep);
  // Start the walk at the longest literal directory prefix.
  let i = 0;
  while (i < parts.length - 1 && !GLOB_CHARS.test(parts[i]!)) i++;
  const root = parts.slice(0, i).join(sep) || sep;
  const out: string[] = [];
  await walk(root, parts.slice(i), out);
  return [...new Set(out)].sort();
}
