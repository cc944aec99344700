import { Command } from 'commander';
import { vi } from 'vitest';
import { register } from '../../src/cli/commands/fetch.ts';

/** Runs `tessera fetch` in-process (spawning costs seconds per run) and returns what it printed, parsed. */
export async function fetchCli<T = unknown>(args: string[]): Promise<T> {
  const program = new Command('tessera').exitOverride();
  register(program);
  let printed = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['fetch', ...args], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return JSON.parse(printed) as T;
}
