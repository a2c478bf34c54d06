// Posters and durations (docs/PROTOCOL.md "Poster and duration"): the
// sender's page takes a small JPEG frame and the length of a video it can
// play and puts them in the sealed manifest (both optional), so a
// receiver's card shows a picture and the length at once, before any chunk
// of the file has arrived.
import * as C from './crypto.js';

export const PREVIEW_TIMEOUT_MS = 3000; // a file whose preview takes longer goes without one
const BOX = { w: 320, h: 180 }; // the poster fits in this
const QUALITIES = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3];
const VIDEO_EXT = /\.(mp4|m4v|mov|webm|mkv|ogv)$/i;

/** Whether f looks like a video this browser may play. */
function playable(f) {
  if (!/^video\//.test(f.type) && !VIDEO_EXT.test(f.name)) return false;
  // QuickTime files are mostly H.264 in the same boxes as mp4; Chromium says '' for video/quicktime.
  const type = /^video\//.test(f.type) && f.type !== 'video/quicktime' ? f.type : 'video/mp4';
  return document.createElement('video').canPlayType(type) !== '';
}

/** The preview of a File for its manifest: {duration?, poster?} (seconds;
 * base64url JPEG of at most C.MAX_POSTER_BYTES). Resolves at once with {}
 * for a file that is not a playable video, and within timeoutMs with what
 * it had by then otherwise; it never rejects. The file is played from a
 * blob URL: the browser reads what it needs, never the whole file. */
export async function previewOf(file, { timeoutMs = PREVIEW_TIMEOUT_MS } = {}) {
  if (typeof document === 'undefined' || !playable(file)) return {};
  const out = {};
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  video.playsInline = true;
  const url = URL.createObjectURL(file);
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no preview within ${timeoutMs / 1000} s`)), timeoutMs); });
  try {
    await Promise.race([grab(video, url, out), late]);
  } catch (e) {
    console.info(`cloakroom: ${file.name} goes without a poster: ${e.message}`);
  } finally {
    clearTimeout(timer);
    video.removeAttribute('src');
    video.load();
    URL.revokeObjectURL(url);
  }
  return { ...out }; // what was there in time (grab may still be running)
}

const once = (target, ok, fail = 'error') => new Promise((resolve, reject) => {
  const done = (f) => (e) => { target.removeEventListener(ok, onOK); target.removeEventListener(fail, onFail); f(e); };
  const onOK = done(resolve);
  const onFail = done(() => reject(new Error(target.error?.message || `${fail} while loading the video`)));
  target.addEventListener(ok, onOK);
  target.addEventListener(fail, onFail);
});

async function grab(video, url, out) {
  const meta = once(video, 'loadedmetadata');
  video.src = url;
  await meta;
  const d = video.duration;
  if (Number.isFinite(d) && d > 0) {
    const ms = Math.round(d * 1000) / 1000;
    if (ms > 0 && ms <= C.MAX_DURATION) out.duration = ms;
  }
  if (!video.videoWidth || !video.videoHeight) throw new Error('no picture (audio only?)');
  // A frame at 10 % (at most a minute in): past a black first frame.
  const seeked = once(video, 'seeked');
  video.currentTime = Number.isFinite(d) && d > 0 ? Math.min(d * 0.1, 60) : 1;
  await seeked;
  const poster = await encode(video);
  if (poster) out.poster = C.b64u(poster);
}

/** The current frame as a JPEG of at most C.MAX_POSTER_BYTES (null if none fits). */
async function encode(video) {
  let scale = Math.min(BOX.w / video.videoWidth, BOX.h / video.videoHeight, 1);
  for (let round = 0; round < 4; round++, scale *= 0.7) {
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(video.videoWidth * scale));
    canvas.height = Math.max(1, Math.round(video.videoHeight * scale));
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    for (const q of QUALITIES) {
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', q));
      if (!blob) return null;
      if (blob.size > C.MAX_POSTER_BYTES) continue;
      const b = new Uint8Array(await blob.arrayBuffer());
      return b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff ? b : null;
    }
  }
  return null;
}

/** The manifest m, without its poster when the manifest with it would pass
 * C.MAX_POSTER_MANIFEST (a file with many piece hashes): the sender drops
 * the poster, keeps the duration, and never fails the send for it. */
export function fitPoster(m) {
  if (!m.poster || C.posterFits(m, C.manifestPlaintext(m))) return m;
  const { poster, ...rest } = m;
  return rest;
}

/** A length in seconds as m:ss or h:mm:ss (as the CLI's ls). */
export function formatDuration(secs) {
  const s = Math.round(secs);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0'), ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

// ---- the card ----------------------------------------------------------------

const shown = new WeakMap(); // card li -> {url, figure, duration}

/** Shows t's poster and duration on its card li (once; later calls only
 * catch up with a <video> that appeared in the card since): the poster as
 * an <img> from a blob: URL of the decoded bytes, with the duration over
 * it, or the duration alone beside the size; every <video> in the card
 * gets the poster attribute. Text only through textContent. */
export function showPreview(li, t) {
  let s = shown.get(li);
  if (!s) {
    if (!t.poster && !t.duration) return;
    s = { url: '', figure: null, duration: null };
    shown.set(li, s);
    if (t.duration) s.duration = Object.assign(document.createElement('span'), { className: 'duration', textContent: formatDuration(t.duration) });
    let bytes = null;
    if (t.poster) {
      try {
        bytes = C.unb64u(t.poster);
        s.url = URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
      } catch { /* validated when the manifest opened; nothing to show otherwise */ }
    }
    if (s.url) {
      const img = Object.assign(document.createElement('img'), { className: 'poster', src: s.url, alt: `Preview of ${t.name}`, decoding: 'async' });
      s.figure = document.createElement('figure');
      s.figure.className = 'preview';
      s.figure.dataset.bytes = String(bytes.length); // the JPEG's size (tests; the CSP keeps fetch off blob: URLs)
      s.figure.append(img);
      if (s.duration) s.figure.append(s.duration);
      li.querySelector('.file-head')?.after(s.figure);
    } else if (s.duration) {
      li.querySelector('.file-info')?.append(s.duration);
    }
    // A <video> added to the card later (while or after the file arrives).
    if (s.url) new MutationObserver(() => videos(li, s)).observe(li, { childList: true, subtree: true });
  }
  videos(li, s);
}

/** Gives every <video> of the card the poster; while one is there, it
 * shows the picture: the figure hides and the duration goes beside the
 * size (and back if the video is replaced, e.g. by "cannot play"). */
function videos(li, s) {
  if (!s.url) return;
  const vs = li.querySelectorAll('video');
  for (const v of vs) if (!v.getAttribute('poster')) v.poster = s.url;
  const hide = vs.length > 0;
  if (s.figure.hidden === hide) return;
  s.figure.hidden = hide;
  if (s.duration) (hide ? li.querySelector('.file-info') : s.figure)?.append(s.duration);
}
