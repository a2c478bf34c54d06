// The JS crypto (web/static/js/crypto.js) must pass every Go test vector
// (internal/crypto/testdata/vectors.json) in Chromium, on a page served by
// `cloakroom serve` with its real Content-Security-Policy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, root, buildBinary, startServer, launch, assert } from './lib.mjs';

await main('vectors', async () => {
  const vectors = JSON.parse(readFileSync(join(root, 'internal/crypto/testdata/vectors.json'), 'utf8'));
  const srv = await startServer(buildBinary());
  const ctx = await launch({ name: 'vectors' });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(srv.url + '/');
  assert(await page.evaluate(() => isSecureContext && !!crypto.subtle), 'page has WebCrypto');
  const res = await page.evaluate(async (v) => (await import('/__test/vectors-run.mjs')).run(v), vectors);
  for (const f of res.failures) console.error('FAIL', f);
  console.log(`vectors: ${res.checks} checks in Chromium, ${res.failures.length} failures`);
  assert(res.failures.length === 0, `${res.failures.length} vector checks failed`);
  assert(res.checks > 50, `only ${res.checks} checks ran`);
  assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
});
