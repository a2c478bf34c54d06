// "Watch while it arrives" (docs/STREAMING.md): a received video gets a
// player whose src is /stream/<token>, answered by the service worker
// (/sw.js) with bytes this page reads from the partial file — waiting, for
// bytes not here yet, while the swarm asks for them first (swarm.js focus).
//
// The worker asks this page over a MessageChannel: {cloakroomStream:
// 'open', token} -> {size, type} (or {} when the token is not ours); then
// on the same port {op: 'read', pos, len} -> {data: ArrayBuffer} or
// {error}, and {op: 'cancel'} when the media element drops the range (a
// seek): the wait and its priority are released.
//
// Where service workers are unavailable (an insecure origin, a private
// window that has none, a page not yet controlled) canStream() is false and
// the card plays the file once it is complete, as before.

const VIDEO = /^video\/(mp4|webm|quicktime|x-matroska|ogg)$/;
const PIECE = 1 << 20; // the most bytes one read answers (the worker asks ≤ 1 MiB)

let room = null;
let ready = false;
const tokens = new Map(); // token -> file id
let streamSeq = 0;
// Tests set globalThis.__streamDebug to see every open, wait and cancel.
const dbg = (...a) => { if (globalThis.__streamDebug) console.info(`stream ${performance.now().toFixed(0)}:`, ...a); };

/** Registers the service worker and starts answering it. */
export function initStreaming() {
  const sw = globalThis.navigator?.serviceWorker;
  if (!sw || !globalThis.isSecureContext) return;
  sw.addEventListener('message', onMessage);
  sw.startMessages?.(); // addEventListener alone would hold the worker's messages until the document has loaded
  const check = () => { ready = !!sw.controller; };
  sw.addEventListener('controllerchange', check);
  check();
  sw.register('/sw.js', { scope: '/' }).then(() => sw.ready).then(check)
    .catch((e) => console.info('cloakroom: no service worker (videos play once complete):', e.message));
}

/** Sets the room whose receptions are streamed: a video it receives is
 * fetched in order from its start (swarm.js focus) when it can play here. */
export function setRoom(r) {
  room = r;
  r.playable = (man) => canStream() && VIDEO.test(String(man.type || '').toLowerCase());
}

/** Whether a video can play while it arrives here. */
export function canStream() { return ready && !!navigator.serviceWorker?.controller; }

/** A /stream/ URL for the reception of file id (null when it cannot stream:
 * no service worker, or a storage that cannot be read back before it is
 * complete). */
export function streamURL(fileId) {
  if (!canStream() || !room) return null;
  const r = room.receiver._recvs.get(fileId);
  if (!r || r.failed || !r.sink || (!r.done && !r.sink.read)) return null;
  const token = [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, '0')).join('');
  tokens.set(token, fileId);
  return '/stream/' + token;
}

/** Forgets every token (the room was left). */
export function forgetStreams() { tokens.clear(); }

function onMessage(ev) {
  const m = ev.data;
  if (!m || m.cloakroomStream !== 'open' || !ev.ports[0]) return;
  const port = ev.ports[0];
  const id = tokens.get(m.token);
  const r = id && room?.receiver._recvs.get(id);
  if (!r || r.failed) { port.postMessage({}); port.close(); return; }
  port.postMessage({ size: r.man.size, type: r.t.type });
  const s = { key: ++streamSeq, r, id, closed: false, cancelWait: null };
  dbg(`#${s.key} open`);
  port.onmessage = async (e) => {
    const q = e.data;
    if (q?.op === 'cancel') { dbg(`#${s.key} cancel`); close(s); port.close(); return; }
    if (q?.op !== 'read') return;
    try {
      const data = await read(s, q.pos, Math.min(q.len, PIECE));
      if (s.closed) return;
      port.postMessage({ data: data.buffer }, [data.buffer]);
    } catch (x) {
      if (!s.closed) port.postMessage({ error: x.message });
    }
  };
}

function close(s) {
  s.closed = true;
  s.cancelWait?.();
  room?.swarm.unfocus(s.id, s.key);
}

/** Reads len bytes at pos of stream s's file: from the complete file, or
 * from the partial one chunk by chunk, waiting (with priority) for chunks
 * not written yet. */
async function read(s, pos, len) {
  const r = s.r;
  const size = r.man.size, cs = r.man.chunkSize;
  len = Math.max(0, Math.min(len, size - pos));
  if (r.done && r.t.file) return new Uint8Array(await r.t.file.slice(pos, pos + len).arrayBuffer());
  const first = Math.floor(pos / cs);
  room.swarm.focus(s.id, s.key, first);
  if (globalThis.__streamDebug && !r.disk[first]) {
    const t0 = performance.now();
    dbg(`#${s.key} waits for chunk ${first} (byte ${pos})`);
    await waitFor(s, first);
    dbg(`#${s.key} got chunk ${first} after ${(performance.now() - t0).toFixed(0)} ms`);
  } else await waitFor(s, first);
  if (r.done && r.t.file) return new Uint8Array(await r.t.file.slice(pos, pos + len).arrayBuffer());
  // Whole chunks already on disk from first on, up to len bytes.
  const out = new Uint8Array(len);
  let n = 0;
  for (let i = first; n < len && i < r.man.chunks && r.disk[i]; i++) {
    const off = i * cs, clen = Math.min(cs, size - off);
    let c;
    try {
      c = await r.sink.read(off, clen);
    } catch (x) {
      // The file was being finished (its handle closes before it is done): read the complete file.
      for (let k = 0; k < 300 && !r.done && !r.failed && !s.closed; k++) await new Promise((res) => setTimeout(res, 100));
      if (r.done && r.t.file) return new Uint8Array(await r.t.file.slice(pos, pos + len).arrayBuffer());
      throw x;
    }
    const from = Math.max(pos + n - off, 0);
    const take = Math.min(clen - from, len - n);
    out.set(c.subarray(from, from + take), n);
    n += take;
  }
  room.swarm.focus(s.id, s.key, Math.floor((pos + n) / cs));
  return n === len ? out : out.slice(0, n); // its own buffer: the buffer is what is sent
}

/** Resolves once chunk i of s's file is on disk (or the file is complete);
 * rejects if the reception fails or the stream is cancelled. */
function waitFor(s, i) {
  const r = s.r;
  if (r.disk[i] || r.done) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (s.closed) { stop(); reject(new Error('cancelled')); } else if (r.failed) { stop(); reject(new Error(r.t.error || 'the reception failed')); } else if (r.disk[i] || r.done) { stop(); resolve(); }
    }, 200);
    const off = room.swarm.onWritten(s.id, (j) => { if (j === i) { stop(); resolve(); } });
    const stop = () => { clearInterval(timer); off(); s.cancelWait = null; };
    s.cancelWait = () => { stop(); reject(new Error('cancelled')); };
  });
}

/** A player for reception t (a video arriving) once its first chunks are
 * written, or null (not a stream here, or nothing written yet). It keeps
 * streaming after the file completes: the same URL then reads the complete
 * file, so playback is not interrupted. */
export function streamingVideo(t) {
  if (t.direction !== 'recv' || t.state !== 'receiving' || !(t.bytes > 0)) return null;
  const url = streamURL(t.id);
  if (!url) return null;
  const v = document.createElement('video');
  v.className = 'media';
  v.src = url;
  v.controls = true;
  v.playsInline = true;
  v.preload = 'metadata';
  v.dataset.stream = 'true';
  return v;
}
