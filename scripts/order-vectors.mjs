// Checks web/static/js/order.js against the verdicts Go's internal/protocol
// checks too (internal/protocol/testdata/order_vectors.json). Exits non-zero
// on a mismatch.
import { readFileSync } from 'node:fs';
import { Order, ORDER_SKEW_MS, validStamp } from '../web/static/js/order.js';

const v = JSON.parse(readFileSync(new URL('../internal/protocol/testdata/order_vectors.json', import.meta.url), 'utf8'));
let checks = 0, fails = 0;
if (v.skewMs !== ORDER_SKEW_MS) { console.log(`FAIL skew ${ORDER_SKEW_MS}, vectors say ${v.skewMs}`); fails++; }
for (const c of v.cases) {
  const o = new Order(c.joined);
  c.events.forEach((e, i) => {
    if (e.baseline) { o.baseline(e.sender, e.baseline.sess, e.baseline.seq); return; }
    checks++;
    if (!validStamp(e.stamp)) { fails++; console.log(`FAIL ${c.name}: event ${i}: stamp refused`); return; }
    const got = o.judge(e.sender, e.stamp);
    const want = { missing: 0, ...e.want };
    if (got.verdict !== want.verdict || (got.missing ?? 0) !== want.missing) {
      fails++;
      console.log(`FAIL ${c.name}: event ${i}: ${JSON.stringify(got)}, want ${JSON.stringify(e.want)}`);
    }
  });
}
if (checks < 20) { console.log(`FAIL only ${checks} checks`); fails++; }
console.log(`order vectors: ${checks} verdicts checked, ${fails} failed`);
process.exit(fails ? 1 : 0);
