// Room restore in the browser (issue 5): the server is killed with SIGKILL
// and restarted on the same address (HTTP and TURN ports) while pages are in
// a room, and nobody clicks anything:
//   1. two pages (A, B; ?transport=turn) create and join a room through the
//      UI and chat; the server dies; both show "reconnecting"; A types a
//      message while the server is down (shown pending); the server comes
//      back; both show "restored"; the queued message reaches B exactly
//      once, B's reply reaches A, each sees the other online again; a
//      message written to a frozen server (SIGSTOP) that is then killed is
//      written again after the restart and arrives once; then a
//      graceful stop (SIGTERM: going_away) and start, after which a file
//      A -> B over TURN works with the credentials of the new welcome (the
//      new server's TURN secret is new: the old credentials are refused);
//   2. a Go `cloakroom send --transport relay` of 64 MiB to both pages; the
//      server is killed and restarted once both hold 60% of it: both pages
//      end with the right file (read back from OPFS), on the card they
//      started (the partial file was continued, not restarted), and the
//      sender re-sent less than the pages held at the kill (their have
//      signals let it skip those chunks; without them it re-sends it all);
//   3. the same with a browser sender (page C, ?transport=relay) to A, B and
//      a Go `cloakroom recv` (which reports it resumed its partial file):
//      its card reports more than one round and the same bound on bytes
//      re-sent.
// Feed items are counted at the end: no chat message was shown twice.
import { join } from 'node:path';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { main, buildBinary, startServer, launch, tempDir, run, assert, stopProc, ensureOutDir } from './lib.mjs';
import { MIB, T, freePort, writeRandomFile, hashFile, waitOnline, finishedCard, checkReceived, chat, waitProgress, tail } from './p2plib.mjs';

const SIZE = 64 * MIB + 4321;
// Slow the relay upload (per address) so the kill lands mid-file.
const SERVE_ARGS = ['--relay-upload-rate', '16MiB'];

await main('restore', async () => {
  const bin = buildBinary();
  const dir = tempDir();
  const port = await freePort();
  const turnPort = await freePort();
  const args = ['--addr', `127.0.0.1:${port}`, '--turn-port', String(turnPort), ...SERVE_ARGS];
  let srv = await startServer(bin, args);
  const url = srv.url;
  // Stops the server (SIGKILL, or SIGTERM: going_away); returns a function
  // that starts it again on the same ports.
  const restart = async (graceful = false) => {
    if (graceful) await stopProc(srv.proc);
    else {
      srv.proc.kill('SIGKILL');
      await new Promise((r) => (srv.proc.exitCode !== null || srv.proc.signalCode !== null ? r() : srv.proc.once('exit', r)));
    }
    return async () => {
      srv = await startServer(bin, args);
      assert(srv.url === url, `restarted on ${srv.url}, want ${url}`);
    };
  };

  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await A.goto(url + '/?transport=turn');
  await A.click('#create');
  await A.waitForSelector('#conn-status[data-state=connected]', T);
  const link = await A.inputValue('#invite-link');
  await B.goto(url + '/?transport=turn' + link.slice(link.indexOf('#')));
  await B.waitForSelector('#conn-status[data-state=connected]', T);
  await waitOnline(A, 1);
  await waitOnline(B, 1);
  const idA = await A.getAttribute('#member-list li.me', 'data-member');
  const idB = await B.getAttribute('#member-list li.me', 'data-member');
  await chat(A, B, 'before the restart, from A');
  await chat(B, A, 'before the restart, from B');

  // ---- 1. the server dies; chat typed meanwhile; restore without a click ----
  {
    const start = await restart();
    await A.waitForSelector('#conn-status[data-state=reconnecting]', T);
    await B.waitForSelector('#conn-status[data-state=reconnecting]', T);
    await A.waitForSelector(`#member-list li[data-member="${idB}"][data-online=false]`, T); // unknown meanwhile
    const queued = 'typed while the server was down';
    await A.fill('#chat-input', queued);
    await A.press('#chat-input', 'Enter');
    await A.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat.mine.pending .text')].some((e) => e.textContent === t), queued, T);
    assert(await A.inputValue('#chat-input') === '', 'the composer took the message while disconnected');
    await A.screenshot({ path: join(ensureOutDir(), 'restore-reconnecting.png') });
    // B stays away while A comes back: the restarted server knows only A,
    // so A must hold the message until B is back (it would be owed to nobody).
    await ctxB.setOffline(true);
    await start();
    await A.waitForSelector('#conn-status[data-state=restored]', T);
    assert((await A.textContent('#conn-status')).includes('Restored'), 'status text says restored');
    assert(await B.getAttribute('#conn-status', 'data-state') === 'reconnecting', 'B is still away');
    assert(await A.locator('#feed li.chat.mine.pending').count() === 1, 'A holds the queued message while B is away');
    await ctxB.setOffline(false);
    await B.waitForSelector('#conn-status[data-state=restored]', T);
    // The restarted server knows only who came back: each page sees the other again.
    await A.waitForSelector(`#member-list li[data-member="${idB}"][data-online=true]`, T);
    await B.waitForSelector(`#member-list li[data-member="${idA}"][data-online=true]`, T);
    await B.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === t), queued, T);
    await A.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat.mine:not(.pending) .text')].some((e) => e.textContent === t), queued, T);
    await chat(B, A, 'after the restart, from B');
    await A.screenshot({ path: join(ensureOutDir(), 'restore-restored.png') });
    console.log('restore: both pages restored; the chat queued during the outage arrived');

    // A message written to a server that froze (SIGSTOP: the socket stays
    // open, nothing is handled) and then died: never confirmed, so it is
    // written again after the restart and arrives once.
    srv.proc.kill('SIGSTOP');
    const unconfirmed = 'written while the server was frozen';
    await A.fill('#chat-input', unconfirmed);
    await A.press('#chat-input', 'Enter');
    await A.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat.mine.pending .text')].some((e) => e.textContent === t), unconfirmed, T);
    assert(await A.getAttribute('#conn-status', 'data-state') === 'restored', 'the frozen server still looks connected');
    const thaw = await restart();
    await A.waitForSelector('#conn-status[data-state=reconnecting]', T);
    await thaw();
    await A.waitForSelector('#conn-status[data-state=restored]', T);
    await B.waitForSelector('#conn-status[data-state=restored]', T);
    await B.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === t), unconfirmed, T);
    await A.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat.mine:not(.pending) .text')].some((e) => e.textContent === t), unconfirmed, T);
    console.log('restore: a message the frozen server never handled was written again after the restart');

    // A graceful stop (SIGTERM: going_away, close 1001) is a restart like any other.
    const again = await restart(true);
    await A.waitForSelector('#conn-status[data-state=reconnecting]', T);
    await B.waitForSelector('#conn-status[data-state=reconnecting]', T);
    await again();
    await A.waitForSelector('#conn-status[data-state=restored]', T);
    await B.waitForSelector('#conn-status[data-state=restored]', T);
    await A.waitForSelector(`#member-list li[data-member="${idB}"][data-online=true]`, T);
    // TURN with the new server's credentials (its secret changed with the restart);
    // nothing else asked for credentials since: they came with the welcome.
    const f = join(dir, 'over-turn.bin');
    const want = writeRandomFile(f, 3 * MIB + 17);
    await A.setInputFiles('#file-input', f);
    const sc = await finishedCard(A, 'send', 'over-turn.bin'); // fails with the page's reason
    assert(sc.path === 'TURN', `sender reports ${sc.path}`);
    const rc = await finishedCard(B, 'recv', 'over-turn.bin');
    assert(rc.path === 'TURN', `file after the restart went via ${rc.path}, want TURN (${rc.status})`);
    await checkReceived(B, rc, want);
    console.log('restore: TURN works with the credentials of the restarted server');
    await chat(A, B, 'after a graceful restart, from A');
  }

  // ---- 2. Go sender over the relay, server killed mid-file ----
  {
    const f = join(dir, 'from-cli.bin');
    const want = writeRandomFile(f, SIZE);
    const send = run(bin, ['send', '--transport', 'relay', link, f], { timeoutMs: 240000 });
    const held = await killMidFile([A, B], 'from-cli.bin', restart);
    const sr = await send.done;
    assert(sr.code === 0, `cloakroom send exit ${sr.code}: ${tail(sr.stderr)}`);
    for (const p of [A, B]) await checkOne(p, 'from-cli.bin', want);
    const m = /relay upload (\d+) bytes in (\d+) round/.exec(sr.stderr);
    assert(m, `no upload report in the sender's output: ${tail(sr.stderr)}`);
    const [uploaded, rounds] = [Number(m[1]), Number(m[2])];
    reportResend('Go sender', uploaded, rounds, held);
  }

  // ---- 3. browser sender over the relay, server killed mid-file ----
  {
    const ctxC = await launch({ name: 'C' });
    const Cp = ctxC.pages()[0] ?? await ctxC.newPage();
    await Cp.goto(url + '/?transport=relay' + link.slice(link.indexOf('#')));
    await Cp.waitForSelector('#conn-status[data-state=connected]', T);
    // A Go receiver too: it continues its partial file and answers have.
    const recvDir = join(dir, 'cli-recv');
    mkdirSync(recvDir);
    const recv = run(bin, ['recv', '--new-only', '--count', '1', '-o', recvDir, link], { timeoutMs: 240000 });
    await Promise.race([waitOnline(Cp, 3), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${tail(r.stderr)}`); })]);
    await waitOnline(A, 3);
    await waitOnline(B, 3);
    const f = join(dir, 'from-page.bin');
    const want = writeRandomFile(f, SIZE);
    await Cp.setInputFiles('#file-input', f);
    const held = await killMidFile([A, B], 'from-page.bin', restart, recvDir);
    for (const p of [A, B]) await checkOne(p, 'from-page.bin', want);
    const rr = await recv.done;
    assert(rr.code === 0, `cloakroom recv exit ${rr.code}: ${tail(rr.stderr)}`);
    assert(hashFile(join(recvDir, 'from-page.bin')) === want.sha256, 'the Go receiver got the bytes the page sent');
    assert(/from-page\.bin: resumed with \d+ of \d+ bytes already here/.test(rr.stderr), `the Go receiver did not continue its partial file: ${tail(rr.stderr)}`);
    const sc = await finishedCard(Cp, 'send', 'from-page.bin');
    const li = Cp.locator('#feed li.file[data-direction=send]:has(.file-name:text-is("from-page.bin"))');
    reportResend('browser sender', Number(await li.getAttribute('data-uploaded')), Number(await li.getAttribute('data-rounds')), held);
    assert(sc.path === 'relay', `browser sender path ${sc.path}`);
    await Cp.waitForSelector('#conn-status[data-state=restored]', T);
    assert(unexpected(ctxC).length === 0, 'page errors: ' + unexpected(ctxC).join('; '));
  }

  // A last message from each side: relay delivery is in order, so a second
  // copy of anything sent before it would have arrived by now.
  await chat(A, B, 'last, from A');
  await chat(B, A, 'last, from B');
  for (const [name, p] of [['A', A], ['B', B]]) {
    const texts = await p.$$eval('#feed li.chat .text', (es) => es.map((e) => e.textContent));
    const dup = texts.filter((t, i) => texts.indexOf(t) !== i);
    assert(dup.length === 0, `page ${name} shows a message twice: ${JSON.stringify(dup)}`);
    assert(texts.length === 8, `page ${name} shows ${texts.length} chat messages, want 8: ${JSON.stringify(texts)}`);
    const pending = await p.locator('#feed li.chat.pending').count();
    assert(pending === 0, `page ${name}: ${pending} messages still pending`);
  }
  for (const ctx of [ctxA, ctxB]) assert(unexpected(ctx).length === 0, 'page errors: ' + unexpected(ctx).join('; '));
});

/** Page errors other than Chromium's own log of each failed connection
 * attempt while the server was down. */
function unexpected(ctx) {
  return ctx.errors.filter((e) => !/console error: WebSocket connection to '[^']*' failed: (Error in connection establishment|Error during WebSocket handshake)/.test(e));
}

/** Kills the server mid-file — once every page holds 60% of name, or (on
 * a loaded machine a page's own progress can lag) once the Go receiver in
 * goDir holds 75% (its chunk bitmap on disk; the sender's 16 MiB window
 * keeps the pages within reach of it) — and starts it again once the
 * pages show reconnecting. Returns the least the pages hold while the
 * server is down: all of it was uploaded in the first round, so a sender
 * that ignored have signals re-sends at least that much. */
async function killMidFile(pages, name, restart, goDir = '') {
  let stop = false;
  const pagesThere = (async () => { for (const p of pages) await waitProgress(p, name, 0.6); })();
  const goThere = goDir ? (async () => {
    while (!stop && goHeld(goDir) < 0.75) await new Promise((r) => setTimeout(r, 20));
  })() : new Promise(() => {});
  await Promise.race([pagesThere, goThere]);
  stop = true;
  pagesThere.catch(() => {});
  const start = await restart();
  for (const p of pages) await p.waitForSelector('#conn-status[data-state=reconnecting]', T);
  const fractions = [];
  for (const p of pages) fractions.push(await recvProgress(p, name));
  const go = goDir ? ` (Go receiver ${(goHeld(goDir) * 100).toFixed(0)}%)` : '';
  await start();
  for (const p of pages) await p.waitForSelector('#conn-status[data-state=restored]', T);
  console.log(`restore: server killed mid-file; ${name} held at ${fractions.map((x) => (x * 100).toFixed(0) + '%').join(' / ')}${go}`);
  return Math.min(...fractions) * SIZE;
}

/** The fraction of chunks the Go receiver's bitmap sidecar in dir marks
 * held (docs/PROTOCOL.md "Resume": 24-byte header, one bit per chunk). */
function goHeld(dir) {
  const f = readdirSync(dir).find((n) => n.endsWith('.have'));
  if (!f) return 0;
  let b;
  try { b = readFileSync(join(dir, f)); } catch { return 0; }
  if (b.length < 24) return 0;
  const chunks = b.readUInt32BE(20);
  let n = 0;
  for (let i = 24; i < b.length; i++) for (let x = b[i]; x; x &= x - 1) n++;
  return chunks ? n / chunks : 0;
}

/** The page received name in full, on the card its reception started on
 * (one card: the partial file was continued under the new announcement). */
async function checkOne(page, name, want) {
  const card = await finishedCard(page, 'recv', name);
  await checkReceived(page, card, want);
  const cards = await page.locator(`#feed li.file[data-direction=recv]:has(.file-name:text-is("${name}"))`).count();
  assert(cards === 1, `${name}: ${cards} cards, want 1 (a new round must continue the partial file)`);
}

function reportResend(who, uploaded, rounds, held) {
  const resent = uploaded - SIZE;
  console.log(`restore: ${who} uploaded ${(uploaded / MIB).toFixed(1)} MiB in ${rounds} round(s) for a ${(SIZE / MIB).toFixed(1)} MiB file (re-sent ${(resent / MIB).toFixed(1)} MiB; the pages held ${(held / MIB).toFixed(1)} MiB at the kill)`);
  assert(rounds >= 2, `${who}: ${rounds} round(s): the kill did not interrupt the upload`);
  assert(uploaded < 2 * SIZE, `${who} uploaded ${uploaded} bytes, not less than twice the file`);
  // Without the pages' have signals the new round re-sends everything they held.
  assert(resent < held, `${who} re-sent ${resent} bytes, not less than the ${held} the pages held at the kill`);
}



async function recvProgress(page, name) {
  return page.evaluate((name) => Math.max(0, ...[...document.querySelectorAll('#feed li.file[data-direction=recv]')]
    .filter((li) => li.querySelector('.file-name')?.textContent === name).map((li) => li.querySelector('progress').value)), name);
}
