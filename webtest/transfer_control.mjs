// Transfer control (issue 14 item 6; web/static/js/control.js, sender.js,
// receiver.js; docs/TRANSFERS.md), three Chromium pages A, B, C in a room on
// the default transport (direct data channels):
//   (a) A sends to B and C; C's page closes mid-transfer: A's card shows B
//       delivered and C "Left before it finished", and is not failed;
//   (b) A cancels mid-transfer: B and C say "Cancelled by the sender" and
//       hold no partial file in OPFS; A's card is cancelled, not failed;
//   (c) C cancels its reception: A's row for C says "Cancelled by <C>", B
//       completes with a SHA-256 match;
//   (d) B sets "ask above" to 1 MiB in the settings (default: 50); a 3 MiB
//       file from A shows Accept/Decline on B (C gets it at once); B
//       declines: A's row for B says "Declined"; a second file B accepts
//       completes with a SHA-256 match;
//   (e) B's navigator.storage.estimate says 1 MB free: Accept is refused
//       with a clear message, nothing starts.
// Each part fails without its feature. Checked by breaking it once, in a
// copy of the tree: the card's verdict back to "done only when everyone got
// it" -> (a) fails ("A's card after C left: failed"); the sender's xfer
// cancel not sent -> (b) times out waiting for B's cancelled card;
// needsAccept always false -> (d) times out waiting for the offer; the
// storage check always ok -> (e) times out waiting for the refusal. (c)
// was not broken separately (without the receiver's cancel there is no
// Cancel button to click).
import { join } from 'node:path';
import { main, buildBinary, launch, tempDir, assert, ensureOutDir } from './lib.mjs';
import { MIB, T, startServerWithTURN, writeRandomFile, createAndJoin, waitOnline, finishedCard, checkReceived, waitProgress } from './p2plib.mjs';

const BIG = 16 * MIB;
// A receiver that must still be receiving when something happens to it runs
// with its CPU throttled (CDP), so "mid-transfer" does not depend on the
// machine's speed; it is released once the action is done.
async function throttle(ctx, page, rate) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate });
  await cdp.detach();
}
const sendSel = (name) => `#feed li.file[data-direction=send]:has(.file-name:text-is("${name}"))`;
const recvSel = (name) => `#feed li.file[data-direction=recv]:has(.file-name:text-is("${name}"))`;
const myId = (page) => page.getAttribute('#member-list li.me', 'data-member');

/** Sets the page's "ask before receiving files larger than" (MiB) in its settings. */
async function askAbove(page, mib) {
  if (!(await page.isVisible('#accept-above'))) await page.click('#transfer-settings summary');
  await page.fill('#accept-above', String(mib));
  await page.dispatchEvent('#accept-above', 'change');
  assert(await page.evaluate(() => localStorage.getItem('cloakroom.acceptAboveMiB')) === String(mib), 'the setting is kept');
}

/** No file named id (or any file) left in the page's OPFS "received" folder. */
async function opfsNames(page) {
  return page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    let dir;
    try { dir = await root.getDirectoryHandle('received'); } catch { return []; }
    const out = [];
    for await (const [name] of dir.entries()) out.push(name);
    return out;
  });
}

await main('transfer_control', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();
  // Pages at their defaults (launch's acceptAll off): 50 MiB.
  const ctxA = await launch({ name: 'A', acceptAll: false });
  const ctxB = await launch({ name: 'B', acceptAll: false });
  let ctxC = await launch({ name: 'C', acceptAll: false });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  let C = ctxC.pages()[0] ?? await ctxC.newPage();
  const link = await createAndJoin(srv.url, '', A, [B, C]);
  const frag = link.slice(link.indexOf('#'));
  for (const p of [A, B, C]) await waitOnline(p, 2);
  const idB = await myId(B);
  let idC = await myId(C);
  const row = (name, id) => `${sendSel(name)} li.recipient[data-member="${id}"]`;
  assert(await B.inputValue('#accept-above') === '50', `the default limit: ${await B.inputValue('#accept-above')}`);
  for (const p of [B, C]) await askAbove(p, 1000); // the big files of (a)-(c) start at once

  // On failure: every card's state and text, for the log.
  const dump = async () => {
    for (const [n, p] of [['A', A], ['B', B], ['C', C]]) {
      const cards = await p.evaluate(() => [...document.querySelectorAll('#feed li.file')].map((li) => `${li.dataset.state}: ${li.textContent}`)).catch(() => ['(closed)']);
      console.error(`transfer_control: ${n}'s cards:\n  ${cards.join('\n  ')}`);
    }
  };
  try {
    await parts();
  } catch (e) {
    await dump();
    throw e;
  }
  for (const ctx of [ctxA, ctxB, ctxC]) assert(ctx.errors.length === 0, `console errors: ${ctx.errors.join('; ')}`);

  async function parts() {
  // (a) C vanishes mid-transfer; B gets the file; A's card is not failed.
  {
    const f = join(dir, 'a.bin');
    const want = writeRandomFile(f, BIG + 777);
    await throttle(ctxC, C, 10);
    await A.setInputFiles('#file-input', f);
    await waitProgress(C, 'a.bin', 0.02);
    await ctxC.close();
    await checkReceived(B, await finishedCard(B, 'recv', 'a.bin'), want);
    const sc = await finishedCard(A, 'send', 'a.bin', { allowFail: true });
    assert(sc.state === 'done', `A's card after C left: ${sc.state}: ${sc.status}`);
    await A.waitForSelector(`${row('a.bin', idC)}[data-state=left]`, T);
    const cText = await A.textContent(row('a.bin', idC));
    const bText = await A.textContent(row('a.bin', idB));
    assert(/Left before it finished/.test(cText), `C's row: ${cText}`);
    assert(/Delivered/.test(bText) && /Direct connection/.test(bText), `B's row: ${bText}`);
    assert(!(await A.$(`${sendSel('a.bin')} .status.error`)), 'A\'s status is not an error');
    assert(/Delivered to 1 of 2/.test(sc.status), `A's status: ${sc.status}`);
    await A.locator(sendSel('a.bin')).screenshot({ path: join(ensureOutDir(), 'transfer-control-sender.png') });
    console.log(`transfer_control: (a) ${sc.status} | B: ${bText} | C: ${cText}`);
  }

  // A new C joins (the old one stays offline in the member list).
  ctxC = await launch({ name: 'C2', acceptAll: false });
  C = ctxC.pages()[0] ?? await ctxC.newPage();
  await C.goto(srv.url + '/' + frag);
  await C.waitForSelector('#conn-status[data-state=connected]', T);
  await waitOnline(A, 2);
  await waitOnline(C, 2);
  idC = await myId(C);
  await askAbove(C, 1000);

  // (b) The sender cancels mid-transfer: both receivers stop and drop the partial file.
  {
    const f = join(dir, 'b.bin');
    writeRandomFile(f, BIG);
    await throttle(ctxB, B, 10);
    await throttle(ctxC, C, 10);
    await A.setInputFiles('#file-input', f);
    await waitProgress(B, 'b.bin', 0.02);
    await A.click(`${sendSel('b.bin')} button.xfer-cancel`);
    for (const p of [B, C]) {
      await p.waitForSelector(`${recvSel('b.bin')}[data-state=cancelled]`, T);
      const st = await p.textContent(`${recvSel('b.bin')} .status`);
      assert(/Cancelled by the sender/.test(st), `receiver status: ${st}`);
      const id = await p.getAttribute(recvSel('b.bin'), 'data-file');
      await p.waitForFunction(async (id) => {
        const root = await navigator.storage.getDirectory();
        try { await (await root.getDirectoryHandle('received')).getFileHandle(id); return false; } catch { return true; }
      }, id, T);
      assert(!(await p.$(`${recvSel('b.bin')} button.xfer-retry`)), 'no Retry for a file its sender cancelled');
    }
    await throttle(ctxB, B, 1);
    await throttle(ctxC, C, 1);
    await A.waitForSelector(`${sendSel('b.bin')}[data-state=cancelled]`, T);
    const st = await A.textContent(`${sendSel('b.bin')} .status`);
    assert(/Cancelled/.test(st), `A's status: ${st}`);
    console.log(`transfer_control: (b) A: ${st}; OPFS left on B: [${await opfsNames(B)}]`);
  }

  // (c) A receiver cancels: the sender's row says so; the other completes.
  {
    const f = join(dir, 'c.bin');
    const want = writeRandomFile(f, BIG + 3);
    await throttle(ctxC, C, 10);
    await A.setInputFiles('#file-input', f);
    await waitProgress(C, 'c.bin', 0.02);
    await C.click(`${recvSel('c.bin')} button.xfer-cancel`);
    await C.waitForSelector(`${recvSel('c.bin')}[data-state=cancelled]`, T);
    await throttle(ctxC, C, 1);
    const cid = await C.getAttribute(recvSel('c.bin'), 'data-file');
    assert(!(await opfsNames(C)).includes(cid), 'C\'s partial file is removed');
    await A.waitForSelector(`${row('c.bin', idC)}[data-state=cancelled]`, T);
    const cText = await A.textContent(row('c.bin', idC));
    const cName = await A.textContent(`#member-list li[data-member="${idC}"] .name`);
    assert(cText.includes(`Cancelled by ${cName}`), `A's row for C: ${cText} (C is ${cName})`);
    await checkReceived(B, await finishedCard(B, 'recv', 'c.bin'), want);
    const sc = await finishedCard(A, 'send', 'c.bin');
    console.log(`transfer_control: (c) ${sc.status} | C: ${cText}`);
    // C can fetch it again (Retry), and gets it whole.
    await C.click(`${recvSel('c.bin')} button.xfer-retry`);
    await checkReceived(C, await finishedCard(C, 'recv', 'c.bin'), want);
    console.log('transfer_control: (c) C retried and got it');
  }

  // (d) Decline, then accept, above B's own threshold (set in the page).
  {
    await askAbove(B, 1);
    const f1 = join(dir, 'd1.bin');
    writeRandomFile(f1, 3 * MIB);
    await A.setInputFiles('#file-input', f1);
    await B.waitForSelector(`${recvSel('d1.bin')}[data-state=offered] button.xfer-accept`, T);
    const offer = await B.textContent(`${recvSel('d1.bin')} .status`);
    assert(/wants to send you d1\.bin \(3\.1 MB\)/.test(offer), `B's offer: ${offer}`);
    await B.locator(recvSel('d1.bin')).screenshot({ path: join(ensureOutDir(), 'transfer-control-offer.png') });
    await finishedCard(C, 'recv', 'd1.bin'); // under C's limit: it started at once
    await A.waitForSelector(`${row('d1.bin', idB)}[data-state=asking]`, T);
    await B.click(`${recvSel('d1.bin')} button.xfer-decline`);
    await A.waitForSelector(`${row('d1.bin', idB)}[data-state=declined]`, T);
    const dText = await A.textContent(row('d1.bin', idB));
    assert(/Declined/.test(dText), `A's row for B: ${dText}`);
    const sc1 = await finishedCard(A, 'send', 'd1.bin');
    console.log(`transfer_control: (d) declined: ${sc1.status} | B: ${dText}`);

    const f2 = join(dir, 'd2.bin');
    const want2 = writeRandomFile(f2, 3 * MIB + 5);
    await A.setInputFiles('#file-input', f2);
    await B.click(`${recvSel('d2.bin')}[data-state=offered] button.xfer-accept`, T);
    await checkReceived(B, await finishedCard(B, 'recv', 'd2.bin'), want2);
    await A.waitForSelector(`${row('d2.bin', idB)}[data-state=delivered]`, T);
    console.log('transfer_control: (d) accepted and received');
  }

  // (e) Too little storage: Accept is refused with a clear message.
  {
    await B.evaluate(() => { navigator.storage.estimate = async () => ({ quota: 2e6, usage: 1e6 }); });
    const f = join(dir, 'e.bin');
    writeRandomFile(f, 3 * MIB);
    await A.setInputFiles('#file-input', f);
    await B.click(`${recvSel('e.bin')}[data-state=offered] button.xfer-accept`, T);
    await B.waitForSelector(`${recvSel('e.bin')} .xfer-refusal:not([hidden])`, T);
    const msg = await B.textContent(`${recvSel('e.bin')} .xfer-refusal`);
    assert(/Not enough space on this device/.test(msg) && /3\.1 MB/.test(msg), `refusal: ${msg}`);
    assert(await B.getAttribute(recvSel('e.bin'), 'data-state') === 'offered', 'nothing started');
    await B.locator(recvSel('e.bin')).screenshot({ path: join(ensureOutDir(), 'transfer-control-refused.png') });
    await B.click(`${recvSel('e.bin')} button.xfer-decline`);
    await A.waitForSelector(`${row('e.bin', idB)}[data-state=declined]`, T);
    console.log(`transfer_control: (e) ${msg}`);
  }

  }
});
