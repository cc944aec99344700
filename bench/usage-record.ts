/**
 * Cost of usage accounting per served request (serve/usage-recorder.ts `recordFetch`), for a request to two
 * joins sharing a group-by, with 1 and 100 rows. Run: `npx tsx bench/usage-record.ts`.
 */
import { Registry } from 'prom-client';
import { groupById } from '../src/online/group-by-id.ts';
import { planFetch } from '../src/serve/fetch-plan.ts';
import { createUsageRecorder } from '../src/serve/usage-recorder.ts';
import { atoModel, fraudModel } from '../test/usage/fixtures.ts';

const recorder = createUsageRecorder({
  store: { addCounters: async () => {} },
  registry: new Registry(),
  flushMs: 1e9,
});
for (const n of [1, 100]) {
  const rows = Array.from({ length: n }, (_, i) => ({
    card_id: `c${i}`,
    merchant_id: `m${i % 7}`,
    amount: 1,
    ts: 0,
  }));
  const plan = planFetch([fraudModel, atoModel], rows, groupById);
  for (let i = 0; i < 20_000; i++) recorder.recordFetch(plan, 0.3); // warm-up
  const runs = 100_000;
  const started = performance.now();
  for (let i = 0; i < runs; i++) recorder.recordFetch(plan, 0.3 + (i % 10) * 0.01);
  const us = ((performance.now() - started) / runs) * 1000;
  console.log(`${n} row(s): ${us.toFixed(2)} µs per recorded request`);
}
await recorder.close();
