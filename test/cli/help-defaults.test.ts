import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register as registerServe } from '../../src/cli/commands/serve.ts';
import { register as registerStream } from '../../src/cli/commands/stream.ts';
import { register as registerUpload } from '../../src/cli/commands/upload.ts';
import { exactHistoryOption } from '../../src/cli/option-parsers.ts';

/** `--exact-history` takes a duration, so its help must show the default as one (it printed 3600000). */
describe('--exact-history help and default', () => {
  const program = new Command('tessera');
  registerServe(program);
  registerStream(program);
  registerUpload(program);

  for (const name of ['serve', 'stream', 'upload']) {
    it(`${name} --help shows the default as 1h`, () => {
      const help = program.commands.find((c) => c.name() === name)!.helpInformation();
      const option = help.slice(help.indexOf('--exact-history'), help.indexOf('--max-tiles-per-key'));
      expect(option).toMatch(/\(default:\s+1h\)/);
      expect(help).not.toContain('3600000');
    });
  }

  it('still parses to milliseconds, 1h by default', () => {
    const cmd = new Command().exitOverride().addOption(exactHistoryOption('x'));
    expect(cmd.parse([], { from: 'user' }).opts().exactHistory).toBe(3_600_000);
    expect(cmd.parse(['--exact-history', '90m'], { from: 'user' }).opts().exactHistory).toBe(5_400_000);
  });
});
