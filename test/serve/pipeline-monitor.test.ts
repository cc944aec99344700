import { describe, expect, it, vi } from 'vitest';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { monitorPipeline } from '../../src/serve/pipeline-monitor.ts';
import { tx } from './fixtures.ts';

describe('monitorPipeline', () => {
  it('does not report a read that fails because the node is shutting down', async () => {
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    let fail: (e: Error) => void = () => {};
    let reads = 0;
    const monitor = monitorPipeline({
      workers: [],
      log: { endOffsets: async () => [0] } as unknown as EventLog,
      sources: [tx],
      staleAfterMs: 1000,
      refresh: () => {
        reads++;
        return new Promise<void>((_, reject) => (fail = reject));
      },
    });
    try {
      await vi.waitFor(() => expect(reads).toBe(1), { timeout: 5000, interval: 20 });
      monitor.stop();
      fail(new Error('the store is closed'));
      await new Promise((r) => setTimeout(r, 50));
      expect(spy).not.toHaveBeenCalled();
      expect(monitor.health().failures).toBe(0);
    } finally {
      monitor.stop();
      spy.mockRestore();
    }
  });
});
