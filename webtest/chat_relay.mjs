// Two browser members (separate Chromium profiles) create and join a room
// through the UI — by link and by typed mini code — chat both ways and send
// files through the relay (a random file, a PNG shown inline, a WebM video
// that plays inline); then browser <-> Go CLI over the relay. Every received
// file is read back from the receiver's OPFS and its SHA-256 compared with the
// sender's. Screenshots of the room view go to test-output/.
import { writeFileSync, readdirSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { main, buildBinary, startServer, launch, tempDir, run, sha256File, ensureOutDir, assert } from './lib.mjs';
import { waitOnline, chat } from './p2plib.mjs';

const MIB = 1 << 20;
const T = { timeout: 60000 };

await main('chat_relay', async () => {
  const bin = buildBinary();
  const srv = await startServer(bin);
  const dir = tempDir();
  const out = ensureOutDir();

  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();

  // A creates a room.
  await A.goto(srv.url + '/?transport=relay');
  await A.click('#create');
  await A.waitForSelector('#room:not([hidden])', T);
  await A.waitForSelector('#conn-status[data-state=connected]', T);
  const link = await A.inputValue('#invite-link');
  const code = (await A.textContent('#mini-code')).trim();
  assert(link.startsWith(srv.url + '/#') && link.length === srv.url.length + 2 + 22, `invite link ${link}`);
  assert(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}-[0-9A-Z]{3}$/.test(code), `mini code ${code}`);
  assert(!A.url().includes('#'), 'creator URL holds no secret');

  // B joins by the link: the fragment is read, then removed from the address bar.
  await B.goto(link);
  await B.waitForSelector('#conn-status[data-state=connected]', T);
  assert(!B.url().includes('#'), `fragment not removed: ${B.url()}`);
  assert(await B.evaluate(() => history.length >= 1 && !location.hash), 'no fragment in location');
  await waitOnline(A, 1);
  await waitOnline(B, 1);
  assert(await B.locator('#feed .empty-room').count() === 0, 'B joined a room with A in it: no "nobody else is here" notice');
  // A link with one wrong character is a different, empty room: the page says so
  // (checked to fail without the notice in app.js enter()).
  {
    const ctxW = await launch({ name: 'W' });
    const W = ctxW.pages()[0] ?? await ctxW.newPage();
    const i = link.indexOf('#') + 5;
    await W.goto(link.slice(0, i) + (link[i] === 'A' ? 'B' : 'A') + link.slice(i + 1));
    await W.waitForSelector('#conn-status[data-state=connected]', T);
    await W.waitForSelector('#feed .empty-room', T);
    assert(/check the link or code/.test(await W.textContent('#feed .empty-room')), 'the empty-room notice names the likely cause');
    assert(ctxW.errors.length === 0, 'page errors: ' + ctxW.errors.join('; '));
    await ctxW.close();
  }

  // C joins by typing the mini code (lower case, spaces instead of dashes), then leaves.
  const ctxC = await launch({ name: 'C', viewport: { width: 390, height: 844 } });
  const Cp = ctxC.pages()[0] ?? await ctxC.newPage();
  await Cp.goto(srv.url + '/');
  // One wrong symbol: the check symbol always catches it (four could pass, 1 in 32).
  await Cp.fill('#join-input', (code[0] === 'Z' ? 'Y' : 'Z') + code.slice(1));
  await Cp.click('#join-button');
  await Cp.waitForSelector('#join-error:not([hidden])', T);
  assert(/typo|character/.test(await Cp.textContent('#join-error')), 'a mistyped code gets a clear error');
  await Cp.screenshot({ path: join(out, 'home-phone-typo.png') });
  await Cp.fill('#join-input', code.toLowerCase().replaceAll('-', ' '));
  await Cp.click('#join-button');
  await Cp.waitForSelector('#conn-status[data-state=connected]', T);
  await waitOnline(Cp, 2);
  await waitOnline(A, 2);
  const idC = await Cp.getAttribute('#member-list li.me', 'data-member');
  await A.waitForSelector(`#member-list li[data-member="${idC}"]`, T);
  await Cp.click('#leave');
  await Cp.click('#leave-ok'); // Leave asks first (issue 14)
  // An explicit leave removes the member for good (not merely offline).
  await A.waitForSelector(`#member-list li[data-member="${idC}"]`, { state: 'detached', timeout: 30000 });
  await waitOnline(A, 1);
  await ctxC.close();

  // Chat both ways.
  await chat(A, B, 'hello from A ☂ <b>not bold</b>');
  await chat(B, A, 'hello from B, café ' + 'x'.repeat(300));
  assert(await B.locator('#feed li.chat b').count() === 0, 'chat text is not parsed as HTML');

  // A random file of a few MiB, A -> B.
  const f1 = join(dir, 'random.bin');
  writeFileSync(f1, randomBytes(3 * MIB + 12345));
  await A.setInputFiles('#file-input', f1);
  const id1 = await receivedFile(B, 'random.bin', sha256File(f1));
  await A.waitForSelector(`#feed li.file[data-file="${id1}"][data-state=done]`, T);
  console.log('chat_relay: A -> B random file ok;', await B.textContent(`#feed li.file[data-file="${id1}"] .status`));
  // The receiver saves its copy; the sender, who has the file, gets Open (a tab), not a second download.
  const acts = async (p) => p.$$eval(`#feed li.file[data-file="${id1}"] .actions a`, (as) => as.map((a) => `${a.textContent}|${a.hasAttribute('download')}|${a.target}`));
  assert(JSON.stringify(await acts(B)) === '["Save|true|"]', `receiver's actions ${JSON.stringify(await acts(B))}`);
  assert(JSON.stringify(await acts(A)) === '["Open|false|_blank"]', `sender's actions ${JSON.stringify(await acts(A))}`);

  // An image, B -> A: shown inline.
  const png = join(dir, 'gradient.png');
  writeFileSync(png, makePNG(480, 300));
  await B.setInputFiles('#file-input', png);
  const id2 = await receivedFile(A, 'gradient.png', sha256File(png));
  const imgW = await A.$eval(`#feed li.file[data-file="${id2}"] img.media`, (img) => img.decode().then(() => img.naturalWidth));
  assert(imgW === 480, `image shown inline, naturalWidth ${imgW}`);

  // An HTML page, A -> B: it reaches B as a download, never with its own
  // type (a blob URL of text/html would run in this page's origin).
  const html = join(dir, 'page.html');
  writeFileSync(html, '<script>parent.postMessage("pwned", "*")</script>');
  await A.setInputFiles('#file-input', html);
  const idH = await receivedFile(B, 'page.html', sha256File(html));
  const info = await B.textContent(`#feed li.file[data-file="${idH}"] .file-info`);
  assert(info.includes('application/octet-stream') && !info.includes('text/html'), `received HTML keeps a safe type: ${info}`);

  // A short video, A -> B: plays inline.
  const webm = join(dir, 'clip.webm');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-t', '3', '-c:v', 'libvpx-vp9', '-b:v', '400k', '-deadline', 'realtime', '-y', webm]);
  await A.setInputFiles('#file-input', webm);
  const id3 = await receivedFile(B, 'clip.webm', sha256File(webm));
  const play = await B.$eval(`#feed li.file[data-file="${id3}"] video.media`, async (v) => {
    v.muted = true;
    if (v.readyState < 2) await new Promise((r, j) => { v.addEventListener('loadeddata', r, { once: true }); v.addEventListener('error', () => j(new Error('video error ' + v.error?.code)), { once: true }); });
    const t0 = v.currentTime;
    await v.play();
    await new Promise((r) => setTimeout(r, 800));
    v.pause();
    return { readyState: v.readyState, advanced: v.currentTime - t0, width: v.videoWidth };
  });
  assert(play.readyState >= 2 && play.advanced > 0.2 && play.width === 640, `video plays inline: ${JSON.stringify(play)}`);
  await B.$eval(`#feed li.file[data-file="${id3}"] video.media`, (v) => { v.currentTime = 1.5; });

  // Go CLI -> browsers over the relay.
  const f4 = join(dir, 'from-cli.bin');
  writeFileSync(f4, randomBytes(2 * MIB + 777));
  const send = run(bin, ['send', '--transport', 'relay', link, f4], { timeoutMs: 90000 });
  const id4 = await receivedFile(A, 'from-cli.bin', sha256File(f4));
  await receivedFile(B, 'from-cli.bin', sha256File(f4));
  const sr = await send.done;
  assert(sr.code === 0, `cloakroom send exit ${sr.code}: ${sr.stderr}`);
  await waitOnline(A, 1); // the sender has left: the next "2 online" is the recv CLI
  console.log('chat_relay: CLI -> browser ok;', await A.textContent(`#feed li.file[data-file="${id4}"] .status`));

  // Browser -> Go CLI over the relay.
  const recvDir = join(dir, 'cli-recv');
  mkdirSync(recvDir);
  const recv = run(bin, ['recv', '--new-only', '--count', '1', '-o', recvDir, link], { timeoutMs: 90000 });
  await Promise.race([waitOnline(A, 2), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${r.stderr}`); })]);
  const f5 = join(dir, 'to-cli.bin');
  writeFileSync(f5, randomBytes(2 * MIB + 4321));
  await A.setInputFiles('#file-input', f5);
  const rr = await recv.done;
  assert(rr.code === 0, `cloakroom recv exit ${rr.code}: ${rr.stderr}`);
  const got = join(recvDir, 'to-cli.bin');
  assert(existsSync(got), `recv wrote ${readdirSync(recvDir)}`);
  assert(sha256File(got) === sha256File(f5), 'CLI received the bytes the browser sent');
  await receivedFile(B, 'to-cli.bin', sha256File(f5));
  await A.waitForSelector('#feed li.file[data-direction=send][data-state=done] >> text=to-cli.bin', T);
  console.log('chat_relay: browser -> CLI ok');

  // Screenshots of the room view with an image and a video inline.
  await B.evaluate(() => document.querySelector('#feed li.file video')?.scrollIntoView({ block: 'center' }));
  await B.screenshot({ path: join(out, 'room-desktop.png') });
  await A.screenshot({ path: join(out, 'room-desktop-sender.png') });
  await B.setViewportSize({ width: 390, height: 844 });
  await B.evaluate(() => document.querySelector('#feed li.file img')?.scrollIntoView({ block: 'center' }));
  await B.screenshot({ path: join(out, 'room-phone.png') });
  await B.screenshot({ path: join(out, 'room-phone-full.png'), fullPage: true });
  await A.setViewportSize({ width: 390, height: 844 });
  await A.evaluate(() => window.scrollTo(0, 0));
  await A.screenshot({ path: join(out, 'room-phone-top.png') });

  for (const ctx of [ctxA, ctxB]) assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
});



/** Waits for a received file card named name, checks the sha256 the page
 * computed and the OPFS file's own SHA-256 (WebCrypto, independent of the
 * page's streaming hash); returns the file id. */
async function receivedFile(page, name, want) {
  const sel = `#feed li.file[data-direction=recv]:has(.file-name:text-is("${name}"))`;
  await page.waitForSelector(`${sel}[data-state=done], ${sel}[data-state=failed]`, T);
  const li = page.locator(sel).last();
  const state = await li.getAttribute('data-state');
  assert(state === 'done', `${name}: ${state}: ${await li.locator('.status').textContent()}`);
  const id = await li.getAttribute('data-file');
  const storage = await li.getAttribute('data-storage');
  assert(storage === 'opfs-worker', `${name}: stored via ${storage}, want opfs-worker (OPFS sync access handles)`);
  const shown = await li.getAttribute('data-sha256');
  assert(shown === want, `${name}: page sha256 ${shown}, sender ${want}`);
  const onDisk = await page.evaluate(async (id) => {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('received');
    const f = await (await dir.getFileHandle(id)).getFile();
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await f.arrayBuffer()));
    return { size: f.size, sha: [...d].map((x) => x.toString(16).padStart(2, '0')).join('') };
  }, id);
  assert(onDisk.sha === want, `${name}: OPFS file sha256 ${onDisk.sha} (${onDisk.size} bytes), want ${want}`);
  return id;
}

function makePNG(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    for (let x = 0; x < w; x++) {
      const i = row + 1 + 3 * x;
      raw[i] = Math.round(40 + 180 * x / w); raw[i + 1] = Math.round(90 + 120 * y / h); raw[i + 2] = 140;
      if (((x >> 5) + (y >> 5)) % 2 === 0) raw[i + 2] = 200;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function crc32(b) {
  let c = ~0;
  for (const x of b) { c ^= x; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); }
  return ~c >>> 0;
}
