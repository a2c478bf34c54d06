// Transfer control between a page and the Go CLI (docs/PROTOCOL.md
// "Transfer control"), over direct data channels:
//   (a) a page sends to `cloakroom recv` and cancels that recipient's row
//       mid-transfer: the CLI says "cancelled by the sender" and leaves no
//       file (nor partial file) behind; the page's row says "Cancelled";
//   (b) `cloakroom send` to a page that cancels its reception mid-transfer:
//       the CLI send fails with "cancelled by the receiver"; the page's card
//       is cancelled and its partial file gone.
// Fails without the feature: with the xfer signal ignored by the Go client
// (client/events.go's case removed, checked once) (a) fails ("the CLI says:
// in the room; waiting for files…"). (b) needs no Go change: it checks the
// page's DC_DONE reason reaches a Go sender as it is.
import { join } from 'node:path';
import { mkdirSync, readdirSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, run, assert, stopProc } from './lib.mjs';
import { MIB, T, startServerWithTURN, writeRandomFile, createAndJoin, waitOnline, waitProgress, tail } from './p2plib.mjs';

const sendSel = (name) => `#feed li.file[data-direction=send]:has(.file-name:text-is("${name}"))`;
const recvSel = (name) => `#feed li.file[data-direction=recv]:has(.file-name:text-is("${name}"))`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await main('transfer_control_cli', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();
  const ctxA = await launch({ name: 'A' });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const link = await createAndJoin(srv.url, '', A, []);
  // A is CPU-throttled while it sends or receives, so each cancel lands mid-transfer.
  const cdp = await ctxA.newCDPSession(A);

  // (a) page -> CLI, cancelled by the page.
  {
    const recvDir = join(dir, 'cli-recv');
    mkdirSync(recvDir);
    const recv = run(bin, ['recv', '--new-only', '--transport', 'p2p', '-o', recvDir, link], { timeoutMs: 180000 });
    await Promise.race([waitOnline(A, 1), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${tail(r.stderr)}`); })]);
    const cli = await A.getAttribute('#member-list li:not(.me)', 'data-member');
    const f = join(dir, 'to-cli.bin');
    writeRandomFile(f, 64 * MIB);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 10 });
    await A.setInputFiles('#file-input', f);
    const row = `${sendSel('to-cli.bin')} li.recipient[data-member="${cli}"]`;
    await A.waitForSelector(`${row}[data-state=sending]`, T);
    await A.$eval(`${row} button.r-cancel`, (b) => b.click());
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    await A.waitForSelector(`${row}[data-state=cancelled]`, T);
    for (let i = 0; i < 600 && !/cancelled by the sender/.test(recv.stderr); i++) await sleep(100);
    assert(/to-cli\.bin.*failed:.*cancelled by the sender/.test(recv.stderr), `the CLI says: ${tail(recv.stderr)}`);
    const left = readdirSync(recvDir);
    assert(!left.some((n) => n.includes('to-cli') || n.endsWith('.part')), `files left in the CLI's directory: ${left}`);
    await stopProc(recv.proc);
    console.log(`transfer_control_cli: (a) ${await A.textContent(row)} | CLI: ${tail(recv.stderr).split('\n').filter((l) => /cancelled/.test(l)).join(' ')}`);
    await waitOnline(A, 0);
  }

  // (b) CLI -> page, cancelled by the page.
  {
    const f = join(dir, 'from-cli.bin');
    writeRandomFile(f, 64 * MIB);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 10 });
    const send = run(bin, ['send', '--transport', 'p2p', link, f], { timeoutMs: 180000 });
    await waitProgress(A, 'from-cli.bin', 0.01);
    await A.$eval(`${recvSel('from-cli.bin')} button.xfer-cancel`, (b) => b.click());
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    await A.waitForSelector(`${recvSel('from-cli.bin')}[data-state=cancelled]`, T);
    const r = await send.done;
    assert(r.code !== 0 && /cancelled by the receiver/.test(r.stderr), `cloakroom send exit ${r.code}: ${tail(r.stderr)}`);
    const id = await A.getAttribute(recvSel('from-cli.bin'), 'data-file');
    await A.waitForFunction(async (id) => {
      const root = await navigator.storage.getDirectory();
      try { await (await root.getDirectoryHandle('received')).getFileHandle(id); return false; } catch { return true; }
    }, id, T);
    console.log(`transfer_control_cli: (b) CLI: ${tail(r.stderr).split('\n').filter((l) => /cancelled/.test(l)).join(' ')}`);
  }

  assert(ctxA.errors.length === 0, `console errors: ${ctxA.errors.join('; ')}`);
});
