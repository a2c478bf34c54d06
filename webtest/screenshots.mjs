// Screenshots for review (issue 14): the start page, a busy room (three
// members, a dozen chat lines, a photo, a file card mid-transfer and a
// finished one) and a transfer seen from the sender, each at desktop
// 1280×800 and phone 390×844, light and dark, saved as
// test-output/shot-<view>-<size>-<scheme>.png.
//
// It also asserts what a look would catch: no horizontal overflow at 390 px,
// the composer inside the viewport, the mid-transfer card really mid-way
// (a progress bar between 0 and 1), no console error in any page. (Checked
// that it can fail: with `.feed { min-width: 500px }` appended to style.css
// the overflow assertion fails at 390 px.)
//
// The transfer is held mid-way deterministically: the sender's
// Blob.prototype.arrayBuffer (how it reads a file's chunks) waits on a gate
// the test closes once the receivers are past a fifth, and opens after the
// screenshots; then the file must still arrive complete.
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { main, buildBinary, startServer, launch, tempDir, ensureOutDir, assert } from './lib.mjs';
import { T, createAndJoin, waitOnline, finishedCard, writeRandomFile, chat, waitProgress } from './p2plib.mjs';

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const SCHEMES = ['light', 'dark'];

const t0 = Date.now();
const step = (what) => console.log(`screenshots: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

await main('screenshots', async () => {
  const bin = buildBinary();
  const srv = await startServer(bin);
  const dir = tempDir();
  const out = ensureOutDir();

  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  const ctxC = await launch({ name: 'C', viewport: SIZES.phone });
  await ctxA.addInitScript(() => {
    const read = Blob.prototype.arrayBuffer;
    window.__gate = null;
    Blob.prototype.arrayBuffer = async function (...a) { while (window.__gate) await window.__gate; return read.apply(this, a); };
    window.__hold = () => { window.__gate = new Promise((r) => { window.__open = () => { window.__gate = null; r(); }; }); };
  });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  const C = ctxC.pages()[0] ?? await ctxC.newPage();

  /** Takes view at every size and scheme from page; checks the layout at each. */
  async function shoot(page, view, { room = false } = {}) {
    for (const [size, vp] of Object.entries(SIZES)) {
      await page.setViewportSize(vp);
      for (const scheme of SCHEMES) {
        await page.emulateMedia({ colorScheme: scheme });
        if (room) await page.evaluate(() => { const f = document.getElementById('feed'); f.scrollTop = f.scrollHeight; window.scrollTo(0, document.documentElement.scrollHeight); });
        await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
        const m = await page.evaluate(() => {
          const c = document.getElementById('composer').getBoundingClientRect();
          return { sw: document.documentElement.scrollWidth, iw: innerWidth, ih: innerHeight, ctop: c.top, cbottom: c.bottom };
        });
        assert(m.sw <= vp.width, `${view} ${size} ${scheme}: the page is ${m.sw} px wide in a ${vp.width} px viewport (horizontal overflow)`);
        if (room) assert(m.ctop >= 0 && m.cbottom <= m.ih + 0.5, `${view} ${size} ${scheme}: the composer is outside the viewport (${m.ctop}..${m.cbottom} of ${m.ih})`);
        await page.screenshot({ path: join(out, `shot-${view}-${size}-${scheme}.png`) });
      }
    }
    await page.setViewportSize(SIZES.desktop);
    await page.emulateMedia({ colorScheme: 'light' });
  }

  // The start page.
  await B.goto(srv.url + '/');
  await B.waitForSelector('#home:not([hidden])', T);
  await shoot(B, 'start');
  step('start page');
  await B.goto('about:blank'); // else joining by the link below is a same-document fragment change

  // A busy room: three members, a dozen lines.
  await createAndJoin(srv.url, '', A, [B, C]);
  for (const p of [A, B, C]) await waitOnline(p, 2);
  const lines = [
    [A, B, 'Morning! Did everyone get home all right?'],
    [B, A, 'Yes, the train was late but fine.'],
    [C, A, 'Same here 🙂'],
    [A, C, 'I have the photos from Saturday, sending them now.'],
    [B, C, 'Great, thanks!'],
    [C, B, 'Can you also send the video of the fireworks? It is a big one I guess.'],
    [A, B, 'Yes, about 2 GB, it will take a while.'],
    [B, A, 'No rush.'],
    [C, A, 'Here is a link to the restaurant: https://example.org/menu'],
    [A, C, 'A long line to see how the bubbles wrap on a narrow phone screen, with enough words to need two or three lines at least.'],
    [B, C, 'ok'],
    [C, B, 'See you next week!'],
  ];
  for (const [from, to, text] of lines) await chat(from, to, text);
  step('chat');

  // A photo and a finished file, from A.
  const photo = join(dir, 'saturday.jpg');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'mandelbrot=s=800x533:end_pts=1', '-frames:v', '1', '-q:v', '4', photo]);
  await A.setInputFiles('#file-input', photo);
  for (const p of [B, C]) await finishedCard(p, 'recv', 'saturday.jpg');
  const notes = join(dir, 'notes.pdf');
  writeRandomFile(notes, 340 * 1024);
  await B.setInputFiles('#file-input', notes);
  for (const p of [A, C]) await finishedCard(p, 'recv', 'notes.pdf');
  await B.waitForFunction(() => [...document.querySelectorAll('#feed img.media')].every((i) => i.complete && i.naturalWidth > 0), null, T);

  step('photo and file');
  // A file held mid-transfer.
  const big = join(dir, 'fireworks-archive.zip');
  writeRandomFile(big, 24 << 20);
  await A.setInputFiles('#file-input', big);
  await waitProgress(B, 'fireworks-archive.zip', 0.2);
  await A.evaluate(() => window.__hold());
  const mid = await B.evaluate(() => [...document.querySelectorAll('#feed li.file[data-direction=recv]')]
    .find((li) => li.querySelector('.file-name').textContent === 'fireworks-archive.zip').querySelector('progress').value);
  assert(mid > 0 && mid < 1, `the held transfer is at ${mid}`);
  await shoot(B, 'room', { room: true });
  await shoot(A, 'transfer', { room: true });
  await shoot(C, 'room-member', { room: true });
  // The phone's room from the top: invite, members, alerts.
  await C.setViewportSize(SIZES.phone);
  await C.evaluate(() => window.scrollTo(0, 0));
  await C.screenshot({ path: join(out, 'shot-room-top-phone-light.png') });
  step('screenshots');
  await A.evaluate(() => window.__open());
  for (const p of [B, C]) await finishedCard(p, 'recv', 'fireworks-archive.zip');

  const errors = [...ctxA.errors, ...ctxB.errors, ...ctxC.errors];
  assert(errors.length === 0, `console errors:\n${errors.join('\n')}`);
  console.log(`screenshots: ${3 * 4 + 2 * 4} PNGs in ${out}`);
});
