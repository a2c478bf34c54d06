// Behind a middlebox that refuses WebSocket upgrades (403) and cuts every
// HTTP fallback down stream after ~300 KB (mid-frame) or 2 s, two pages
// fall back to HTTP, chat both ways and move a file through the relay
// (SHA-256 checked in the receiver's OPFS); a Go CLI in the same room
// falls back too and receives the file.
import http from 'node:http';
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { main, buildBinary, startServer, launch, tempDir, run, sha256File, assert, onCleanup } from './lib.mjs';
import { waitOnline, chat, finishedCard, T } from './p2plib.mjs';

const MIB = 1 << 20;
// Bytes after which the middlebox cuts a down stream (0: never; it also
// cuts every stream after 2 s).
const CUT = Number(process.env.HTTP_FALLBACK_CUT ?? 300_001);
// Console errors the middlebox causes on purpose.
const EXPECTED = /WebSocket connection to .* failed|Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE)/;

/** The middlebox: refuses upgrades, passes other requests, cuts down streams. */
async function middlebox(target) {
  const t = new URL(target);
  const stats = { refused: 0, cuts: 0, down: 0, up: 0 };
  const srv = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    if (path === '/h/down') stats.down++;
    if (path === '/h/up') stats.up++;
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      res.flushHeaders();
      if (path !== '/h/down' || !CUT) return ur.pipe(res);
      let left = CUT;
      const cut = () => { stats.cuts++; ur.destroy(); res.destroy(); };
      const timer = setTimeout(cut, 2000);
      ur.on('data', (d) => {
        if (d.length >= left) { res.write(d.subarray(0, left)); clearTimeout(timer); return cut(); }
        left -= d.length;
        res.write(d);
      });
      ur.on('end', () => { clearTimeout(timer); res.end(); });
      ur.on('error', () => { clearTimeout(timer); res.destroy(); });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  srv.on('upgrade', (req, socket) => {
    stats.refused++;
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 21\r\nConnection: close\r\n\r\nno WebSocket allowed\n');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }));
  return { url: `http://127.0.0.1:${srv.address().port}`, stats };
}

await main('http_fallback', async () => {
  const bin = buildBinary();
  const srv = await startServer(bin);
  const mb = await middlebox(srv.url);
  const dir = tempDir();

  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await A.goto(mb.url + '/?transport=relay');
  await A.click('#create');
  await A.waitForSelector('#conn-status[data-state=connected][data-wire=http]', T);
  const link = await A.inputValue('#invite-link');
  await B.goto(link);
  await B.waitForSelector('#conn-status[data-state=connected][data-wire=http]', T);
  await waitOnline(A, 1);
  await waitOnline(B, 1);

  await chat(A, B, 'hello over HTTP from A');
  await chat(B, A, 'hello over HTTP from B');

  // A Go CLI behind the same middlebox falls back too (and says so).
  const recvDir = join(dir, 'cli-recv');
  mkdirSync(recvDir);
  const recv = run(bin, ['recv', '--new-only', '--count', '1', '-o', recvDir, link], { timeoutMs: 90000 });
  await Promise.race([waitOnline(A, 2), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${r.stderr}`); })]);

  const f = join(dir, 'fallback.bin');
  writeFileSync(f, randomBytes(8 * MIB + 4321));
  const t0 = Date.now();
  await A.setInputFiles('#file-input', f);
  const card = await finishedCard(B, 'recv', 'fallback.bin');
  const secs = (Date.now() - t0) / 1000;
  assert(card.storage === 'opfs-worker', `stored via ${card.storage}`);
  assert(card.sha256 === sha256File(f), `page sha256 ${card.sha256}, sender ${sha256File(f)}`);
  const rr = await recv.done;
  assert(rr.code === 0, `cloakroom recv exit ${rr.code}: ${rr.stderr}`);
  assert(/connected over HTTP fallback/.test(rr.stderr), `the CLI says it fell back: ${rr.stderr}`);
  const got = join(recvDir, 'fallback.bin');
  assert(existsSync(got) && sha256File(got) === sha256File(f), 'CLI received the bytes the page sent');

  console.log(`http_fallback: 8 MiB page -> page + CLI over HTTP in ${secs.toFixed(1)} s; middlebox ${JSON.stringify(mb.stats)}`);
  assert(mb.stats.refused >= 3, `middlebox refused ${mb.stats.refused} upgrades, want >= 3 (two pages, one CLI)`);
  assert(mb.stats.cuts > 0 || !CUT, 'middlebox cut no down stream');
  for (const ctx of [ctxA, ctxB]) {
    const errors = ctx.errors.filter((e) => !EXPECTED.test(e));
    assert(errors.length === 0, 'page errors: ' + errors.join('; '));
  }
});
