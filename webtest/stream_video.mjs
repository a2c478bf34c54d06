// "Watch while it arrives" (docs/STREAMING.md) between two Chromium pages,
// the sender's upload shaped so that the big file takes over a minute:
//
//	root:  lo        10.B.0.1/32   the server (TURN on, for the pages' STUN)
//	                               and the receiving page's Chromium
//	       crhN-v    10.B.1.1/24   veth ── crnN-v 10.B.1.2/24 in netns crN-v
//	crN-v: the sending page's Chromium (started through a wrapper script,
//	       `ip netns exec crN-v chromium …`); default route via 10.B.1.1; the
//	       egress of crnN-v shaped by tc tbf (STREAM_MBIT, default 25 Mbit/s)
//
// Videos made with ffmpeg (cached in $TMPDIR/cloakroom-stream-video-cache):
// a ~200 MiB H.264 mp4 with its moov first (faststart), a ~200 MiB VP9
// webm, and an H.264 mp4 with its moov at the end (~50 MiB), each a short high-bitrate noisy clip
// concatenated (the concat demuxer, -c copy) at a bitrate below the link's.
// For each file sent from the sender's page, asserted and printed: the
// receiver's card shows a <video> streaming from /stream/…, which reaches
// readyState ≥ 3 with currentTime advancing within 5 s of the card
// appearing while < 25 % of the file has arrived for the two big files, and
// before the end of the download for the moov-at-end one (the issue's bound:
// its end comes first, and the time is printed); for the big mp4, the
// worker's answers to fetches beside the player's (206 with the file's
// bytes, 200, 416, 404 for an unknown token, a POST left to the server); for
// both big files a seek to 80 % of the duration plays (currentTime passes
// the seek point) within 5 s and the whole download takes ≥ 60 s; at the end
// the OPFS copy's SHA-256 matches, and the sender's veth sent at least the
// file's size (the bytes came through the shaped path). Needs root, `ip
// netns`, tc and ffmpeg; fails (never skips) without them.
import { spawn, execFileSync } from 'node:child_process';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { existsSync, mkdirSync, writeFileSync, chmodSync, openSync, readSync, closeSync, statSync, renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { main, buildBinary, launch, tempDir, assert, onCleanup, stopProc, cleanup, CHROMIUM } from './lib.mjs';
import { MIB, SLICE, T, createAndJoin, waitOnline, finishedCard, checkReceived, tail } from './p2plib.mjs';
import { sh, need, shapedNamespace, freePortPair } from './netns.mjs';

const PLAY_MS = 5000;  // card -> playing; seek -> playing
const MAX_FRACTION_AT_PLAY = 0.25;

/** SHA-256 of a file and of each of its 4 MiB slices (checkReceived's want). */
function hashSlices(path) {
  const fd = openSync(path, 'r');
  const whole = createHash('sha256');
  const slices = [];
  const buf = Buffer.allocUnsafe(SLICE);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, SLICE, null);
      if (n <= 0) break;
      whole.update(buf.subarray(0, n));
      slices.push(createHash('sha256').update(buf.subarray(0, n)).digest('hex'));
    }
  } finally { closeSync(fd); }
  return { sha256: whole.digest('hex'), slices };
}

/** Makes (or finds in the cache) a video: copies of a short clip, concatenated. */
function video(cache, name, { clip, copies, out }) {
  // Cached under a key of how it is made: a change of recipe makes it anew.
  cache = join(cache, createHash('sha256').update(JSON.stringify({ clip, copies, out })).digest('hex').slice(0, 16));
  mkdirSync(cache, { recursive: true });
  const path = join(cache, name);
  if (existsSync(path)) return path;
  const c = join(cache, 'clip-' + name);
  const t0 = Date.now();
  sh('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...clip, c], { timeout: 300000 });
  const list = join(cache, name + '.txt');
  writeFileSync(list, Array.from({ length: copies }, () => `file '${basename(c)}'\n`).join(''));
  const tmp = join(cache, 'tmp-' + name);
  sh('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', ...out, tmp], { timeout: 300000 });
  renameSync(tmp, path);
  console.log(`stream_video: made ${name} (${(statSync(path).size / MIB).toFixed(1)} MiB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return path;
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { console.error(`stream_video: ${sig}, cleaning up`); cleanup().finally(() => process.exit(1)); });
process.env.WEBTEST_TIMEOUT_MS ??= '900000';

await main('stream_video', async () => {
  assert(typeof process.getuid === 'function' && process.getuid() === 0, `this test needs root (network namespace, tc); uid ${process.getuid?.()}`);
  for (const p of ['ip', 'tc', 'ffmpeg']) need(p);
  assert(existsSync(CHROMIUM), `${CHROMIUM} is missing`);
  const mbit = Number(process.env.STREAM_MBIT || 25);
  const bin = buildBinary();

  // The videos.
  const cache = join(tmpdir(), 'cloakroom-stream-video-cache');
  mkdirSync(cache, { recursive: true });
  const noise = (size) => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30,noise=alls=20:allf=t+u`, '-t', '4', '-an'];
  const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '16M', '-maxrate', '16M', '-bufsize', '8M', '-g', '30', '-pix_fmt', 'yuv420p'];
  const files = [
    { name: 'big.mp4', big: true, path: video(cache, 'big.mp4', { clip: [...noise('1280x720'), ...x264], copies: 25, out: ['-movflags', '+faststart'] }) },
    { name: 'vp9.webm', path: video(cache, 'vp9.webm', { clip: [...noise('960x540'), '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-b:v', '12M', '-minrate', '12M', '-maxrate', '12M', '-g', '30'], copies: 37, out: [] }), big: true },
    { name: 'moov-end.mp4', path: video(cache, 'moov-end.mp4', { clip: [...noise('1280x720'), ...x264], copies: 6, out: [] }) },
  ];
  for (const f of files) { f.size = statSync(f.path).size; f.want = hashSlices(f.path); }
  {
    // The moov-at-end file really has its moov after its mdat.
    const head = Buffer.alloc(64);
    const fd = openSync(files[2].path, 'r'); readSync(fd, head, 0, 64, 0); closeSync(fd);
    const s = head.toString('latin1');
    assert(s.indexOf('mdat') >= 0 && (s.indexOf('moov') < 0), `moov-end.mp4 starts with ${JSON.stringify(s.replace(/[^ -~]/g, '.'))}`);
  }

  // Topology.
  const { ns, server, qdisc, txBytes } = shapedNamespace('v', mbit);

  // The server on 10.B.0.1 with TURN (the pages' STUN server).
  const turnPort = await freePortPair(server);
  const srv = spawn(bin, ['serve', '--addr', server + ':0', '--public-ip', server, '--turn-port', turnPort, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(srv));
  let srvOut = '';
  srv.stdout.on('data', (d) => { srvOut += d; });
  srv.stderr.on('data', (d) => { srvOut += d; });
  for (let i = 0; i < 200 && !/serving on http:\/\/\S+/.test(srvOut); i++) await new Promise((r) => setTimeout(r, 100));
  const m = /serving on (http:\/\/[0-9.:]+)/.exec(srvOut);
  assert(m, `serve did not start: ${tail(srvOut)}`);
  const url = m[1];

  // The sender's Chromium in the namespace; the receiver's in the root one.
  const dir = tempDir();
  const wrapper = join(dir, 'chromium-in-ns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const secure = `--unsafely-treat-insecure-origin-as-secure=${url}`;
  const ctxA = await launch({ name: 'sender', args: [secure], executable: wrapper });
  const ctxB = await launch({ name: 'receiver', args: [secure, '--autoplay-policy=no-user-gesture-required'] });
  if (process.env.STREAM_DEBUG) {
    await ctxB.addInitScript(() => { globalThis.__streamDebug = true; });
    ctxB.on('console', (msg) => { if (msg.text().startsWith('stream ')) console.log('[receiver]', msg.text()); });
  }
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await createAndJoin(url, '?transport=p2p', A, [B]);
  await waitOnline(A, 1);
  await waitOnline(B, 1);
  assert(await B.evaluate(() => window.isSecureContext && !!crypto.subtle), 'the receiver has no secure context');
  await B.waitForFunction(() => !!navigator.serviceWorker?.controller, null, { timeout: 20000 }).catch(() => {
    throw new Error('the receiver page is not controlled by the service worker (/sw.js)');
  });
  const codecs = await B.evaluate(() => ({ h264: document.createElement('video').canPlayType('video/mp4; codecs="avc1.64001f"'), vp9: document.createElement('video').canPlayType('video/webm; codecs="vp9"') }));
  assert(codecs.h264 && codecs.vp9, `this Chromium cannot play the test videos: ${JSON.stringify(codecs)}`);
  // When each card and its player appear (page time).
  await B.evaluate(() => {
    window.__seen = {};
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('#feed li.file[data-direction=recv]')) {
        const name = li.querySelector('.file-name')?.textContent;
        const s = window.__seen[name] ||= { card: performance.now() };
        if (!s.video && li.querySelector('video[data-stream=true]')) s.video = performance.now();
      }
    }).observe(document.getElementById('feed'), { childList: true, subtree: true });
  });

  const results = [];
  // STREAM_ONLY=name,… sends only those files (while working on one case).
  const only = process.env.STREAM_ONLY ? process.env.STREAM_ONLY.split(',') : null;
  for (const f of files) {
    if (only && !only.includes(f.name)) continue;
    const tx0 = txBytes();
    const t0 = Date.now();
    await A.setInputFiles('#file-input', f.path);
    const sel = `#feed li.file[data-direction=recv]:has(.file-name:text-is("${f.name}"))`;
    await B.waitForSelector(`${sel} video[data-stream=true]`, T);
    // Play (muted) and wait until it plays: readyState ≥ 3, currentTime advancing.
    const play = await B.evaluate(async ({ name, limit }) => {
      const li = [...document.querySelectorAll('#feed li.file[data-direction=recv]')].find((x) => x.querySelector('.file-name')?.textContent === name);
      const v = li.querySelector('video');
      const frac = () => li.querySelector('progress').value;
      v.muted = true;
      v.play().catch(() => {});
      const card = window.__seen[name].card;
      let start = null;
      for (;;) {
        const now = performance.now();
        if (v.readyState >= 3 && start !== null && v.currentTime > start + 0.25) {
          return { ok: true, ms: now - card, videoMs: window.__seen[name].video - card, fraction: frac(), state: li.dataset.state, t: v.currentTime, src: v.currentSrc, duration: v.duration };
        }
        if (v.readyState >= 3 && start === null) start = v.currentTime;
        const over = limit ? now - card > limit : li.dataset.state !== 'receiving';
        if (over) return { ok: false, ms: now - card, videoMs: window.__seen[name].video - card, readyState: v.readyState, t: v.currentTime, err: v.error?.message, fraction: frac(), state: li.dataset.state };
        await new Promise((r) => setTimeout(r, 25));
      }
    }, { name: f.name, limit: f.big ? PLAY_MS : 0 }); // moov at the end: before the download ends (the issue's bound)
    const r = { name: f.name, size: f.size, play };
    console.log(`stream_video: ${f.name} (${(f.size / MIB).toFixed(1)} MiB): ${play.ok ? 'plays' : 'does NOT play'} ${(play.ms / 1000).toFixed(2)} s after its card appeared (player shown after ${((play.videoMs ?? NaN) / 1000).toFixed(2)} s), ${(play.fraction * 100).toFixed(1)} % arrived, state ${play.state}, currentTime ${play.t?.toFixed(2)} s${play.err ? ', error ' + play.err : ''}`);
    assert(play.ok, `${f.name}: no playback ${f.big ? `within ${PLAY_MS / 1000} s of the card` : 'before the download ended'}: ${JSON.stringify(play)}`);
    assert(/\/stream\/[0-9a-f]{32}$/.test(play.src), `${f.name}: the player plays ${play.src}, want /stream/…`);
    assert(play.state === 'receiving', `${f.name}: it played only after its download ended (${play.state})`);
    if (f.big) assert(play.fraction < MAX_FRACTION_AT_PLAY, `${f.name}: ${(play.fraction * 100).toFixed(1)} % had arrived when it played, want < ${MAX_FRACTION_AT_PLAY * 100} %`);
    if (f.name === 'big.mp4') {
      // The worker's answers beside the player's: a Range (206), no Range
      // (200, read in part), an unsatisfiable Range (416), an unknown token
      // (404), and a POST under /stream/ left to the network (the server).
      const want = Buffer.alloc(100);
      const fd = openSync(f.path, 'r'); readSync(fd, want, 0, 100, 1000); closeSync(fd);
      const errs = ctxB.errors.length;
      const h = await B.evaluate(async (src) => {
        const r206 = await fetch(src, { headers: { Range: 'bytes=1000-1099' } });
        const b206 = [...new Uint8Array(await r206.arrayBuffer())];
        const r200 = await fetch(src);
        const rd = r200.body.getReader();
        const first = await rd.read();
        await rd.cancel();
        const r416 = await fetch(src, { headers: { Range: 'bytes=999999999999-' } });
        const r404 = await fetch('/stream/' + '0'.repeat(32), { headers: { Range: 'bytes=0-' } });
        const post = await fetch(src, { method: 'POST', body: 'x' });
        return {
          s206: r206.status, cr: r206.headers.get('content-range'), cl: r206.headers.get('content-length'), ar: r206.headers.get('accept-ranges'), ct: r206.headers.get('content-type'), b206,
          s200: r200.status, cl200: r200.headers.get('content-length'), firstLen: first.value?.length ?? 0,
          s416: r416.status, cr416: r416.headers.get('content-range'), s404: r404.status, postStatus: post.status, postServer: post.headers.get('content-security-policy')?.includes('script-src') ?? false,
        };
      }, play.src);
      // The 416 and the 404s asked for above are logged as console errors: not the page's.
      const asked = /Failed to load resource: the server responded with a status of (404|416)\b/;
      ctxB.errors.splice(errs, ctxB.errors.length - errs, ...ctxB.errors.slice(errs).filter((e) => !asked.test(e)));
      console.log(`stream_video: the worker answers: Range ${h.s206} (${h.cr}, ${h.cl} bytes, ${h.ct}), no Range ${h.s200} (${h.cl200} bytes, first piece ${h.firstLen}), past the end ${h.s416} (${h.cr416}), unknown token ${h.s404}, POST ${h.postStatus} from the server`);
      assert(h.s206 === 206 && h.cr === `bytes 1000-1099/${f.size}` && h.cl === '100' && h.ar === 'bytes' && h.ct === 'video/mp4', `206: ${JSON.stringify(h)}`);
      assert(Buffer.from(h.b206).equals(want), 'the 206 body differs from the file\'s bytes 1000-1099');
      assert(h.s200 === 200 && h.cl200 === String(f.size) && h.firstLen > 0 && h.firstLen <= MIB, `200: ${JSON.stringify(h)}`);
      assert(h.s416 === 416 && h.cr416 === `bytes */${f.size}`, `416: ${JSON.stringify(h)}`);
      assert(h.s404 === 404, `unknown token: ${h.s404}`);
      assert(h.postServer && h.postStatus !== 206 && h.postStatus !== 200, `a POST under /stream/ was not left to the network: ${h.postStatus}`);
    }
    if (f.big) {
      const seek = await B.evaluate(async ({ name, limit }) => {
        const li = [...document.querySelectorAll('#feed li.file[data-direction=recv]')].find((x) => x.querySelector('.file-name')?.textContent === name);
        const v = li.querySelector('video');
        const to = v.duration * 0.8;
        const fraction = li.querySelector('progress').value;
        const t0 = performance.now();
        v.currentTime = to;
        for (;;) {
          const now = performance.now();
          if (!v.seeking && v.readyState >= 3 && v.currentTime > to + 0.25 && !v.paused) return { ok: true, ms: now - t0, to, t: v.currentTime, fraction, state: li.dataset.state };
          if (now - t0 > limit) return { ok: false, ms: now - t0, to, t: v.currentTime, readyState: v.readyState, seeking: v.seeking, fraction, state: li.dataset.state };
          await new Promise((r) => setTimeout(r, 25));
        }
      }, { name: f.name, limit: PLAY_MS });
      r.seek = seek;
      console.log(`stream_video: ${f.name}: seek to 80 % (${seek.to.toFixed(1)} s) with ${(seek.fraction * 100).toFixed(1)} % arrived: ${seek.ok ? 'plays' : 'does NOT play'} after ${(seek.ms / 1000).toFixed(2)} s (currentTime ${seek.t.toFixed(2)} s)`);
      assert(seek.ok, `${f.name}: the seek to 80 % did not play within ${PLAY_MS / 1000} s: ${JSON.stringify(seek)}`);
      assert(seek.fraction < 0.8 && seek.state === 'receiving', `${f.name}: the seek came too late to test anything (${(seek.fraction * 100).toFixed(1)} % arrived, ${seek.state})`);
    }
    // The download's progress, every 10 s (for the log).
    const progress = setInterval(() => {
      B.evaluate((name) => [...document.querySelectorAll('#feed li.file[data-direction=recv]')].find((x) => x.querySelector('.file-name')?.textContent === name)?.querySelector('progress').value ?? -1, f.name)
        .then((x) => console.log(`stream_video: ${f.name}: ${(x * 100).toFixed(1)} % after ${((Date.now() - t0) / 1000).toFixed(0)} s`), () => {});
    }, 10000);
    await B.waitForSelector(`${sel}[data-state=done], ${sel}[data-state=failed]`, { timeout: 60000 + f.size * 8 / (mbit * 1e6) * 3000 }).finally(() => clearInterval(progress));
    const card = await finishedCard(B, 'recv', f.name);
    const secs = (Date.now() - t0) / 1000;
    await checkReceived(B, card, f.want);
    const sent = txBytes() - tx0;
    const still = await B.evaluate((name) => {
      const li = [...document.querySelectorAll('#feed li.file[data-direction=recv]')].find((x) => x.querySelector('.file-name')?.textContent === name);
      const vs = li.querySelectorAll('video');
      for (const v of vs) v.pause();
      return { videos: vs.length, src: vs[0]?.currentSrc, error: vs[0]?.error?.message ?? null };
    }, f.name);
    console.log(`stream_video: ${f.name}: complete after ${secs.toFixed(1)} s (${(f.size * 8 / secs / 1e6).toFixed(1)} Mbit/s), SHA-256 matches; the sender's veth sent ${(sent / MIB).toFixed(1)} MiB; the card keeps ${still.videos} player (${still.src?.replace(/.*\//, '/stream/…') }${still.error ? ', error ' + still.error : ''})`);
    assert(sent >= f.size, `${f.name}: the sender's veth sent ${sent} bytes, less than the file's ${f.size}: the bytes did not come through the shaped path`);
    assert(still.videos === 1 && !still.error, `${f.name}: after completion the card has ${still.videos} players (${JSON.stringify(still)})`);
    r.secs = secs;
    results.push(r);
  }
  for (const r of results) {
    if (files.find((f) => f.name === r.name)?.big) assert(r.secs >= 60, `${r.name} took ${r.secs.toFixed(1)} s, want ≥ 60 s (is the link shaped?)`);
  }
  console.log(`stream_video: sender egress:\n${qdisc()}`);
  for (const c of [ctxA, ctxB]) assert(c.errors.length === 0, 'page errors: ' + c.errors.join('; '));
});
