// A server limit reached by a browser member is shown on the page, never a
// silent drop: a server with a tiny message rate (one per 5 s; a message
// waits at most 2 s for its turn) refuses part of a burst of
// chat messages, and the page shows the refusal in its feed.
import { main, buildBinary, startServer, launch, assert } from './lib.mjs';

const T = { timeout: 30000 };

await main('limits', async () => {
  const srv = await startServer(buildBinary(), ['--msg-rate', '0.2', '--msg-burst', '2']);
  const ctx = await launch({ name: 'limits' });
  const A = ctx.pages()[0] ?? await ctx.newPage();
  await A.goto(srv.url + '/?transport=relay');
  await A.click('#create');
  await A.waitForSelector('#conn-status[data-state=connected]', T);
  assert(await A.locator('#feed li.notice').count() === 0, 'no notice before any limit is reached');
  for (let i = 0; i < 12; i++) {
    await A.fill('#chat-input', `burst ${i}`);
    await A.press('#chat-input', 'Enter');
  }
  await A.waitForSelector('#feed li.notice[data-code=rate_limited]', T);
  const text = await A.textContent('#feed li.notice[data-code=rate_limited]');
  assert(/too many requests/.test(text), `the refusal says what happened: ${text}`);
  console.log('limits: page shows', JSON.stringify(text));
  assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
});
