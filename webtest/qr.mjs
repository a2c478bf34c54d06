// The room's QR code, end to end with the vendored libraries:
// (a) A creates a room; the QR code the page draws is screenshotted and
//     decoded in Node with the vendored decoder (web/vendor/jsqr): it must be
//     the invite link. Copy link / Copy code fill the clipboard.
// (b) That screenshot becomes a fake camera (a y4m file Chromium plays as its
//     webcam); B, on a phone-sized page, taps "Scan QR code" and must join
//     A's room (A sees B online); the camera is off afterwards.
// (c) C's camera shows a QR code (made with the vendored generator) of a room
//     link on another host: the page says so, does not join, and Cancel
//     stops the camera.
// Screenshots of the share panel and the scanner go to test-output/.
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { main, root, buildBinary, startServer, launch, tempDir, ensureOutDir, assert } from './lib.mjs';

const T = { timeout: 60000 };
const require = createRequire(import.meta.url);
const jsQR = require(join(root, 'web/vendor/jsqr/jsQR.js'));
const { default: qrcode } = await import(join(root, 'web/vendor/qrcode-generator/qrcode.mjs'));
const PHONE = { width: 390, height: 844 };

await main('qr', async () => {
  const bin = buildBinary();
  const srv = await startServer(bin);
  const dir = tempDir();
  const out = ensureOutDir();

  // (a) The QR code A shows is the invite link.
  const ctxA = await launch({ name: 'A' });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  await A.goto(srv.url + '/');
  await A.click('#create');
  await A.waitForSelector('#conn-status[data-state=connected]', T);
  const link = await A.inputValue('#invite-link');
  assert(link.startsWith(srv.url + '/#'), `invite link ${link}`);
  const qrPNG = join(dir, 'qr.png');
  await A.locator('#invite-qr svg').screenshot({ path: qrPNG });
  const shown = decodePNG(qrPNG);
  assert(shown === link, `QR code on the page decodes to ${JSON.stringify(shown)}, want the invite link`);
  console.log(`qr: the page's QR code (${await A.getAttribute('#invite-qr svg', 'data-modules')} modules) decodes to the invite link`);
  // Copy link / Copy code put exactly the link and the code on the clipboard.
  await ctxA.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  await A.click('#copy-link');
  await A.waitForSelector('#copy-link:text-is("Copied")', T);
  assert(await A.evaluate(() => navigator.clipboard.readText()) === link, 'Copy link copies the invite link');
  await A.click('#copy-code');
  const code = (await A.textContent('#mini-code')).trim();
  await A.waitForFunction((c) => navigator.clipboard.readText().then((t) => t === c), code, T);
  await A.waitForSelector('#copy-link:text-is("Copy link")', T);
  await A.locator('#share').screenshot({ path: join(out, 'share-desktop.png') });
  await A.screenshot({ path: join(out, 'share-desktop-page.png') });

  // (b) B joins by scanning that QR code with its (fake) camera.
  const camB = join(dir, 'room-qr.y4m');
  toY4M(['-i', qrPNG], camB);
  const ctxB = await launch({ name: 'B', viewport: PHONE, args: fakeCamera(camB) });
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await B.goto(srv.url + '/');
  await noSideScroll(B);
  await B.screenshot({ path: join(out, 'home-phone.png') });
  const scanBox = await B.locator('#scan').boundingBox();
  assert(scanBox.height >= 44 && scanBox.width >= 300, `scan button is a large touch target: ${JSON.stringify(scanBox)}`);
  await B.click('#scan');
  // No wait for '#scanner[open]': it closes as soon as the code is read,
  // which can be before a wait sees it. Joining is what proves the scan.
  await B.waitForSelector('#conn-status[data-state=connected]', T);
  const idB = await B.getAttribute('#member-list li.me', 'data-member');
  await A.waitForSelector(`#member-list li[data-member="${idB}"][data-online=true]`, T);
  assert(!(await B.locator('#scanner').evaluate((d) => d.open)), 'scanner closed after joining');
  assert(await B.evaluate(() => document.getElementById('scanner-video').srcObject === null), 'camera released after joining');
  // Both pages are in the same room: they show the same invite link.
  assert(await B.inputValue('#invite-link') === link, 'B joined the room of the scanned link');
  console.log('qr: B joined A\'s room by scanning its QR code');
  await noSideScroll(B);
  const bottom = await B.evaluate(() => document.getElementById('composer').getBoundingClientRect().bottom);
  assert(Math.abs(bottom - 844) < 2, `the composer sits at the bottom of an empty phone room (bottom at ${bottom})`);
  await B.screenshot({ path: join(out, 'share-phone.png') });
  await B.click('#share summary');
  await B.waitForSelector('#invite-qr svg', { state: 'visible' });
  await noSideScroll(B);
  const tap = await B.evaluate(() => ['#copy-link', '#copy-code', '#leave', '#send', '.attach'].map((s) => [s, document.querySelector(s).getBoundingClientRect().height]));
  for (const [s, h] of tap) assert(h >= 44, `${s} is ${h} px tall on a phone, want >= 44`);
  await B.screenshot({ path: join(out, 'share-phone-open.png') });
  await B.screenshot({ path: join(out, 'share-phone-full.png'), fullPage: true });

  // (c) A QR code of a room on another host is refused with a clear message.
  const foreign = 'https://elsewhere.example/#' + link.split('#')[1];
  const camC = join(dir, 'foreign-qr.y4m');
  const { gray, size } = renderQR(foreign, 8);
  const raw = join(dir, 'foreign.gray');
  writeFileSync(raw, gray);
  toY4M(['-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${size}x${size}`, '-i', raw], camC);
  const ctxC = await launch({ name: 'C', viewport: PHONE, args: fakeCamera(camC) });
  const Cp = ctxC.pages()[0] ?? await ctxC.newPage();
  await Cp.goto(srv.url + '/');
  await Cp.click('#scan');
  await Cp.waitForSelector('#scanner[data-state=rejected]', T);
  const msg = await Cp.textContent('#scanner-status');
  assert(msg.includes('elsewhere.example') && msg.includes('not to this server'), `rejection message: ${msg}`);
  assert(!msg.includes(link.split('#')[1]), 'the message does not quote the secret');
  await noSideScroll(Cp);
  const cancelBox = await Cp.locator('#scanner-cancel').boundingBox();
  assert(cancelBox.height >= 44 && cancelBox.y + cancelBox.height <= 844, `Cancel is a large, visible button: ${JSON.stringify(cancelBox)}`);
  await Cp.screenshot({ path: join(out, 'scanner-phone-rejected.png') });
  assert(await Cp.locator('#room').isHidden(), 'C did not join anything');
  await Cp.evaluate(() => { window.scanTracks = document.getElementById('scanner-video').srcObject.getTracks(); });
  assert(await Cp.evaluate(() => window.scanTracks.length === 1 && window.scanTracks[0].readyState === 'live'), 'camera live while scanning');
  await Cp.click('#scanner-cancel');
  await Cp.waitForFunction(() => !document.getElementById('scanner').open, null, T);
  // The dialog's close event (which stops the camera) is a task queued after
  // `open` turns false: wait for it, boundedly.
  assert(await Cp.waitForFunction(() => window.scanTracks.every((t) => t.readyState === 'ended'), null, { timeout: 5000 }).then(() => true, () => false), 'Cancel stops the camera');
  assert(await Cp.locator('#home').isVisible(), 'back on the start page after Cancel');
  // Escape closes the scanner too, and stops the camera again.
  await Cp.click('#scan');
  await Cp.waitForSelector('#scanner[data-state=rejected]', T);
  await Cp.evaluate(() => { window.scanTracks = document.getElementById('scanner-video').srcObject.getTracks(); });
  await Cp.keyboard.press('Escape');
  await Cp.waitForFunction(() => !document.getElementById('scanner').open, null, T);
  // The dialog's close event (which stops the camera) is a task queued after
  // `open` turns false: wait for it, boundedly.
  assert(await Cp.waitForFunction(() => window.scanTracks.every((t) => t.readyState === 'ended'), null, { timeout: 5000 }).then(() => true, () => false), 'Escape stops the camera');
  console.log('qr: a room link of another host is refused; Cancel and Escape stop the camera');

  // Desktop: the scanner as a dialog over the start page.
  await Cp.setViewportSize({ width: 1280, height: 800 });
  await Cp.click('#scan');
  await Cp.waitForSelector('#scanner[data-state=rejected]', T);
  await Cp.screenshot({ path: join(out, 'scanner-desktop.png') });
  await Cp.click('#scanner-cancel');

  for (const ctx of [ctxA, ctxB, ctxC]) assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
});

/** Fails when the page is wider than its viewport (sideways scrolling on a phone). */
async function noSideScroll(page) {
  const { sw, w } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: window.innerWidth }));
  assert(sw <= w, `page is ${sw} px wide in a ${w} px viewport`);
}

function fakeCamera(file) {
  return ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${file}`];
}

/** Decodes a PNG with the vendored jsQR (ffmpeg turns it into RGBA pixels). */
function decodePNG(path) {
  const png = readFileSync(path);
  const w = png.readUInt32BE(16), h = png.readUInt32BE(20);
  const rgba = execFileSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { maxBuffer: 64 << 20 });
  assert(rgba.length === w * h * 4, `ffmpeg gave ${rgba.length} bytes for ${w}x${h}`);
  const code = jsQR(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.length), w, h);
  return code ? code.data : null;
}

/** A 2-second 640x480 y4m video of an image (ffmpeg input args) centred on
 * white: the fake webcam's picture. */
function toY4M(input, out) {
  execFileSync('ffmpeg', ['-v', 'error', '-stream_loop', '-1', ...input, '-t', '2', '-r', '10',
    '-vf', 'scale=w=400:h=400:force_original_aspect_ratio=decrease:flags=neighbor,pad=640:480:(ow-iw)/2:(oh-ih)/2:white',
    '-pix_fmt', 'yuv420p', '-y', out]);
}

/** text as a QR code drawn by the vendored generator: 8-bit gray pixels. */
function renderQR(text, scale) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount() + 8;
  const size = n * scale;
  const gray = Buffer.alloc(size * size, 255);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.floor(y / scale) - 4, c = Math.floor(x / scale) - 4;
      if (r >= 0 && c >= 0 && r < n - 8 && c < n - 8 && qr.isDark(r, c)) gray[y * size + x] = 0;
    }
  }
  return { gray, size };
}
