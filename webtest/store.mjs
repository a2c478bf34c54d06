// web/static/js/store.js in Chromium: every sink kind writes in and out of
// order and hashes right (see pages/store-run.mjs).
import { main, buildBinary, startServer, launch, assert } from './lib.mjs';

await main('store', async () => {
  const srv = await startServer(buildBinary());
  const ctx = await launch({ name: 'store' });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(srv.url + '/');
  const res = await page.evaluate(async () => (await import('/__test/store-run.mjs')).run());
  for (const f of res.failures) console.error('FAIL', f);
  console.log(`store: ${res.checks} checks, ${res.failures.length} failures`);
  assert(res.failures.length === 0 && res.checks > 50, 'store checks');
  assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
});
