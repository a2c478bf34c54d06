// A video's poster and duration before any of it arrived (issue 13,
// docs/PROTOCOL.md "Poster and duration"), in Chromium:
//   1. ffmpeg makes a short H.264 mp4; page A shares it with page B through
//      the relay (?transport=relay on both pages);
//   2. B's WebSocket passes through a test proxy (Playwright routeWebSocket)
//      that holds every binary frame (the relay's chunk frames) from the
//      server, so no chunk can reach B before the assertions — not a race
//      against the transfer;
//   3. B's card shows the poster (an <img> from a blob: URL, loaded:
//      naturalWidth > 0, at most 8192 bytes of JPEG) and the duration,
//      which matches ffprobe's rounded to the second, while B has received
//      0 bytes; the card is saved as a screenshot (its path printed);
//   4. the held frames are let through: the file arrives intact and the
//      card's <video> carries the poster.
// Also: a non-video file shared next gets no preview.
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, assert, ensureOutDir, sha256File } from './lib.mjs';
import { T, startServerWithTURN, createAndJoin, waitOnline, finishedCard } from './p2plib.mjs';

const fileSel = (dir, name) => `#feed li.file[data-direction=${dir}]:has(.file-name:text-is("${name}"))`;
// A plain CSS selector of a card (for code run in the page), by its file id.
const cssOf = async (page, dir, name) => `#feed li.file[data-direction=${dir}][data-file="${await page.locator(fileSel(dir, name)).last().getAttribute('data-file')}"]`;
const fmt = (secs) => {
  const s = Math.round(secs);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0'), ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
};

await main('poster', async () => {
  const bin = buildBinary();
  const dir = tempDir();
  const clip = join(dir, 'clip.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=73.6',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '32', '-pix_fmt', 'yuv420p', '-y', clip], { stdio: 'inherit' });
  const probed = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', clip], { encoding: 'utf8' }).trim());
  assert(probed > 70 && probed < 80, `ffprobe says ${probed} s`);
  const want = fmt(probed);
  const other = join(dir, 'notes.txt');
  writeFileSync(other, 'not a video\n'.repeat(1000));

  const srv = await startServerWithTURN(bin);
  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  // B's WebSocket through a proxy that holds the server's binary frames
  // (chunks) while `hold` is set; text frames (the manifest) pass.
  let hold = true;
  const held = [];
  let passed = 0; // binary frames B got
  await ctxB.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      if (typeof m !== 'string' && hold) { held.push([ws, m]); return; }
      if (typeof m !== 'string') passed++;
      ws.send(m);
    });
    ws.onClose((code, reason) => server.close({ code, reason }));
    server.onClose((code, reason) => ws.close({ code, reason }));
  });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await createAndJoin(srv.url, '?transport=relay', A, [B]);
  await waitOnline(A, 1);
  await waitOnline(B, 1);
  assert(await B.evaluate(() => document.createElement('video').canPlayType('video/mp4; codecs="avc1.42E01E"') !== ''), 'this Chromium cannot play H.264 mp4');

  // 1-3. The poster and duration on B's card, nothing of the file in B.
  const t0 = Date.now();
  await A.setInputFiles('#file-input', clip);
  await B.waitForSelector(fileSel('recv', 'clip.mp4'), T);
  const appeared = Date.now() - t0;
  const sel = await cssOf(B, 'recv', 'clip.mp4');
  await B.waitForFunction((s) => document.querySelector(`${s} .preview img.poster`)?.naturalWidth > 0, sel, { timeout: 10000 });
  const card = await B.evaluate((s) => {
    const li = document.querySelector(s);
    const img = li.querySelector('.preview img.poster');
    return {
      state: li.dataset.state, path: li.dataset.path, progress: li.querySelector('progress').value,
      duration: li.querySelector('.preview .duration')?.textContent, src: img.src, alt: img.alt,
      w: img.naturalWidth, h: img.naturalHeight, size: Number(li.querySelector('.preview').dataset.bytes),
      status: li.querySelector('.status').textContent,
    };
  }, sel);
  assert(passed === 0, `${passed} chunk frames reached B before the assertions`);
  assert(card.state === 'receiving' && card.progress === 0, `B's card: ${card.state}, progress ${card.progress} (${card.status}), want receiving at 0`);
  assert(card.src.startsWith('blob:'), `poster src ${card.src}, want a blob: URL`);
  assert(card.w > 0 && card.w <= 320 && card.h <= 180, `poster ${card.w}x${card.h}, want within 320x180`);
  assert(card.size > 0 && card.size <= 8192, `poster of ${card.size} bytes, want at most 8192`);
  assert(card.duration === want, `duration shown ${card.duration}, ffprobe says ${probed} s (${want})`);
  assert(card.alt === 'Preview of clip.mp4', `alt ${card.alt}`);
  const shot = join(ensureOutDir(), 'poster-card.png');
  await B.locator(sel).screenshot({ path: shot });
  console.log(`poster: B's card appeared ${appeared} ms after A picked the file, with a ${card.w}x${card.h} poster (${card.size} bytes) and duration ${card.duration} (ffprobe ${probed} s), ${held.length} chunk frames held, 0 bytes received`);
  console.log(`poster: screenshot of the card: ${shot}`);
  // The sender's own card shows them too.
  await A.waitForSelector(fileSel('send', 'clip.mp4'), T);
  const aSel = await cssOf(A, 'send', 'clip.mp4');
  await A.waitForFunction((s) => document.querySelector(`${s} .preview img.poster`)?.naturalWidth > 0, aSel, { timeout: 10000 });

  // 4. Let the chunks through: the file arrives, its <video> has the poster.
  hold = false;
  for (const [ws, m] of held.splice(0)) { passed++; ws.send(m); }
  const rc = await finishedCard(B, 'recv', 'clip.mp4');
  assert(rc.sha256 === sha256File(clip), `B's clip.mp4 has SHA-256 ${rc.sha256}`);
  const video = await B.evaluate((s) => {
    const li = document.querySelector(s);
    const v = li.querySelector('video');
    return { poster: v?.getAttribute('poster') || '', img: li.querySelector('.preview img.poster')?.getAttribute('src'), figureHidden: li.querySelector('.preview')?.hidden, duration: li.querySelector('.file-info .duration')?.textContent };
  }, sel);
  assert(video.poster && video.poster === video.img, `the card's <video> poster ${video.poster}, want the preview's ${video.img}`);
  assert(video.figureHidden && video.duration === want, `with the video shown: figure hidden ${video.figureHidden}, duration beside the size ${video.duration}`);
  console.log(`poster: then ${passed} chunk frames let through; clip.mp4 arrived intact, its <video> shows the poster`);
  // A non-video file (after the clip: a page sends one file at a time): no preview.
  await A.setInputFiles('#file-input', other);
  await B.waitForSelector(fileSel('recv', 'notes.txt'), T);
  const oSel = await cssOf(B, 'recv', 'notes.txt');
  assert(await B.evaluate((s) => !document.querySelector(`${s} .preview, ${s} .duration`), oSel), 'a text file got a preview');

  await finishedCard(B, 'recv', 'notes.txt');
  assert(ctxA.errors.length === 0 && ctxB.errors.length === 0, 'page errors: ' + [...ctxA.errors, ...ctxB.errors].join('; '));
});
