// The room library between pages and the Go CLI (protocol v4), both ways
// round a holder that is not the origin:
//   1. page A sends a file to page B and leaves; `cloakroom get` fetches it
//      from B (a page serving from its OPFS copy, each chunk checked by the
//      CLI against the origin's hashes) and says B helped;
//   2. page A sends a file to a running `cloakroom recv` and leaves; page C
//      joins and gets it from the CLI (the page checks every chunk against
//      the origin's hashes), its card naming A as the one who shared it;
//   3. `cloakroom chat` posts lines, page A sees them live; page B joins
//      later and shows them as history (from the CLI and from A, once each,
//      in order, with the CLI as their sender).
// LIB_DEBUG=1 prints page 1B's console and the CLI's debug log.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { mkdirSync, existsSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, run, assert, onCleanup, stopProc } from './lib.mjs';
import { MIB, T, startServerWithTURN, writeRandomFile, hashFile, createAndJoin, waitOnline, finishedCard, checkReceived, tail } from './p2plib.mjs';

const page = async (ctx) => ctx.pages()[0] ?? await ctx.newPage();
const memberOf = (p) => p.evaluate(() => [...document.querySelectorAll('#member-list li:not(.me)')].map((li) => li.dataset.member));

await main('library_cli', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();

  // 1. A page holder serves the CLI.
  {
    const ctxA = await launch({ name: 'A1' });
    const ctxB = await launch({ name: 'B1' });
    const A = await page(ctxA), B = await page(ctxB);
    if (process.env.LIB_DEBUG) B.on('console', (m) => console.log(`[B] ${m.type()}: ${m.text()}`));
    const link = await createAndJoin(srv.url, '', A, [B]);
    await waitOnline(A, 1);
    const f = join(dir, 'page-held.bin');
    const want = writeRandomFile(f, 5 * MIB + 11);
    await A.setInputFiles('#file-input', f);
    await checkReceived(B, await finishedCard(B, 'recv', 'page-held.bin'), want);
    await finishedCard(A, 'send', 'page-held.bin');
    const [aID] = await memberOf(B);
    await ctxA.close();
    const out = join(dir, 'get-out');
    mkdirSync(out);
    const get = run(bin, ['get', '--log-level', process.env.LIB_DEBUG ? 'debug' : 'info', '-o', out, link, 'page-held.bin'], { timeoutMs: 120000 });
    const r = await get.done;
    assert(r.code === 0, `cloakroom get exit ${r.code}: ${process.env.LIB_DEBUG ? r.stderr : tail(r.stderr)}`);
    const got = join(out, 'page-held.bin');
    assert(existsSync(got) && hashFile(got) === want.sha256, 'the CLI got the bytes the page held');
    assert(new RegExp(`page-held\\.bin: shared by ${aID.slice(0, 8)}; 1 other member\\(s\\) helped`).test(r.stderr), `the CLI says who helped: ${tail(r.stderr)}`);
    assert(ctxB.errors.length === 0, 'page errors: ' + ctxB.errors.join('; '));
    console.log('library_cli: cloakroom get fetched a file from a page that is not its origin');
    await ctxB.close();
  }

  // 2. A CLI holder serves a page.
  {
    const ctxA = await launch({ name: 'A2' });
    const ctxC = await launch({ name: 'C2' });
    const A = await page(ctxA), C = await page(ctxC);
    const link = await createAndJoin(srv.url, '', A, []);
    const out = join(dir, 'recv-out');
    mkdirSync(out);
    const recv = run(bin, ['recv', '--log-level', 'info', '-o', out, link], { timeoutMs: 180000 });
    await Promise.race([waitOnline(A, 1), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${tail(r.stderr)}`); })]);
    const f = join(dir, 'cli-held.bin');
    const want = writeRandomFile(f, 5 * MIB + 22);
    await A.setInputFiles('#file-input', f);
    await finishedCard(A, 'send', 'cli-held.bin');
    assert(hashFile(join(out, 'cli-held.bin')) === want.sha256, 'the CLI received the file');
    const aID = await A.evaluate(() => document.querySelector('#member-list li.me').dataset.member);
    await ctxA.close();
    await C.goto(srv.url + '/' + link.slice(link.indexOf('#')));
    await C.waitForSelector('#conn-status[data-state=connected]', T);
    const rc = await finishedCard(C, 'recv', 'cli-held.bin');
    await checkReceived(C, rc, want);
    const card = await C.evaluate(() => {
      const li = document.querySelector('#feed li.file[data-direction=recv]');
      return { origin: li.dataset.origin, helpers: Number(li.dataset.helpers) };
    });
    assert(card.origin === aID && card.helpers === 1, `C's card: ${JSON.stringify(card)}, want origin ${aID}`);
    assert(ctxC.errors.length === 0, 'page errors: ' + ctxC.errors.join('; '));
    console.log('library_cli: a page fetched a file from the CLI, not its origin:', rc.status);
    recv.proc.kill('SIGTERM');
    await ctxC.close();
  }

  // 3. Chat history from the CLI (and from a page that saw it) for a newcomer.
  {
    const ctxA = await launch({ name: 'A3' });
    const ctxB = await launch({ name: 'B3' });
    const A = await page(ctxA), B = await page(ctxB);
    const link = await createAndJoin(srv.url, '', A, []);
    const chat = spawn(bin, ['chat', link], { stdio: ['pipe', 'pipe', 'pipe'] });
    onCleanup(() => stopProc(chat));
    let said = '';
    chat.stderr.on('data', (d) => { said += d; });
    await waitOnline(A, 1);
    const [cliID] = await memberOf(A);
    const lines = ['from the CLI one', 'from the CLI two', 'from the CLI three'];
    for (const l of lines) chat.stdin.write(l + '\n');
    await A.waitForFunction((n) => document.querySelectorAll('#feed li.chat:not(.mine)').length === n, lines.length, T);
    await B.goto(srv.url + '/' + link.slice(link.indexOf('#')));
    await B.waitForSelector('#conn-status[data-state=connected]', T);
    await B.waitForFunction((n) => document.querySelectorAll('#feed li.chat').length >= n, lines.length, T);
    await new Promise((r) => setTimeout(r, 1500)); // a second copy (from the other member) would show by now
    const shown = await B.evaluate(() => [...document.querySelectorAll('#feed li.chat')].map((li) => ({ text: li.querySelector('.text').textContent, from: li.dataset.from })));
    assert(JSON.stringify(shown.map((x) => x.text)) === JSON.stringify(lines), `B shows ${JSON.stringify(shown)} (chat said: ${said})`);
    assert(shown.every((x) => x.from === cliID), `senders ${JSON.stringify(shown)}, want the CLI ${cliID}`);
    for (const c of [ctxA, ctxB]) assert(c.errors.length === 0, 'page errors: ' + c.errors.join('; '));
    console.log('library_cli: a newcomer page shows the CLI\'s chat as history, once, in order');
    chat.stdin.end();
    await stopProc(chat);
  }
});
