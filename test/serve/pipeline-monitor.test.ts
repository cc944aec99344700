import { describe, expect, it, vi } from 'vitest';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { monitorPipeline } from '../../src/serve/pipeline-monitor.ts';
import { cardStats, tx } from './fixtures.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

  it('turns stale when a progress read hangs, keeps one read in flight, and answers progress() anyway', async () => {
    let hang = false;
    let reads = 0;
    const monitor = monitorPipeline({
      workers: [
        {
          topic: 't',
          source: tx.name,
          groupBys: [cardStats],
          partition: 0,
          worker: { stats: () => ({ nextOffset: 10, watermark: 5 }) as never },
        },
      ],
      log: { endOffsets: async () => [10] } as unknown as EventLog,
      sources: [tx],
      staleAfterMs: 300,
      refresh: () => {
        reads++;
        // e.g. a SIGSTOPped Redis, read by a client without a command timeout: no error, no answer
        return hang ? new Promise<void>(() => {}) : Promise.resolve();
      },
    });
    try {
      await sleep(250);
      expect(monitor.isStale(cardStats)).toBe(false);
      hang = true;
      const before = reads;
      await sleep(1000);
      expect(Date.now() - monitor.health().observedAt).toBeGreaterThan(600);
      expect({ started: reads - before, stale: monitor.isStale(cardStats) }).toEqual({
        started: 1,
        stale: true,
      });
      const asked = Date.now();
      const progress = await monitor.progress();
      expect(Date.now() - asked).toBeLessThan(2000);
      expect(progress).toEqual([{ source: tx.name, lag: 0, watermark: 5 }]);
    } finally {
      monitor.stop();
    }
  });
});
