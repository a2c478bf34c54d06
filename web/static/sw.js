// Service worker for "watch while it arrives" (docs/STREAMING.md) and for
// the share target (docs/PWA.md). It answers GET requests for
// /stream/<token> and POST /share, nothing else: every other request goes
// to the network untouched (no respondWith). The bytes of a stream come
// from the page that owns the reception (js/stream.js), asked through a
// MessageChannel in bounded pieces. A share's files are kept in the Cache
// API until the page picks them up (js/share.js), at most a day: the server
// never receives them. This worker keeps no key.
'use strict';

const PIECE = 1 << 20;        // at most this many bytes per pull
const OPEN_TIMEOUT_MS = 10000; // a page that does not answer an open in this long: 504

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  const url = new URL(req.url);
  if (req.method === 'POST' && url.origin === self.location.origin && url.pathname === '/share') {
    ev.respondWith(receiveShare(req));
    return;
  }
  if (req.method !== 'GET') return;
  if (url.origin !== self.location.origin || !url.pathname.startsWith('/stream/')) return;
  const token = url.pathname.slice('/stream/'.length);
  if (!/^[0-9a-f]{32}$/.test(token)) { ev.respondWith(new Response('not found', { status: 404 })); return; }
  ev.respondWith(answer(ev, token, req.headers.get('range')));
});

/** Asks port one question; resolves with the answer (or rejects after ms). */
function ask(port, msg, ms = 0) {
  return new Promise((resolve, reject) => {
    const t = ms ? setTimeout(() => reject(new Error('no answer')), ms) : 0;
    port.onmessage = (ev) => { clearTimeout(t); resolve(ev.data); };
    port.postMessage(msg);
  });
}

/** Opens token at the page that owns it: the requesting client first, else
 * any window of this origin. Returns {port, size, type} or null. */
async function open(ev, token) {
  const first = ev.clientId ? await self.clients.get(ev.clientId) : null;
  const all = (await self.clients.matchAll({ type: 'window' })).filter((c) => c.id !== first?.id);
  for (const c of first ? [first, ...all] : all) {
    const ch = new MessageChannel();
    const p = new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), OPEN_TIMEOUT_MS);
      ch.port1.onmessage = (m) => { clearTimeout(t); resolve(m.data); };
    });
    c.postMessage({ cloakroomStream: 'open', token }, [ch.port2]);
    const head = await p;
    if (head && Number.isSafeInteger(head.size)) return { port: ch.port1, size: head.size, type: head.type };
    ch.port1.close();
  }
  return null;
}

/** The byte range [start, end] a Range header asks for, null for the whole
 * file, or false when it cannot be satisfied. */
function range(h, size) {
  if (!h) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return false;
  let start, end;
  if (m[1] === '') { start = Math.max(0, size - Number(m[2])); end = size - 1; } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) return false;
  return [start, end];
}

async function answer(ev, token, rangeHeader) {
  const f = await open(ev, token);
  if (!f) return new Response('not found', { status: 404 });
  const r = range(rangeHeader, f.size);
  // The type is the reception's sanitised one (a video type, or octet-stream);
  // opened as a document (a new tab) it may load itself and nothing else.
  const headers = {
    'Content-Type': f.type || 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'none'; media-src 'self'",
  };
  if (r === false) {
    f.port.postMessage({ op: 'cancel' });
    f.port.close();
    return new Response(null, { status: 416, headers: { ...headers, 'Content-Range': `bytes */${f.size}` } });
  }
  const [start, end] = r || [0, f.size - 1];
  let pos = start;
  const body = new ReadableStream({
    async pull(ctl) {
      if (pos > end) { f.port.postMessage({ op: 'cancel' }); f.port.close(); ctl.close(); return; }
      const a = await ask(f.port, { op: 'read', pos, len: Math.min(PIECE, end + 1 - pos) });
      if (!a || !a.data) { f.port.close(); ctl.error(new Error(a?.error || 'read failed')); return; }
      const b = new Uint8Array(a.data);
      pos += b.length;
      ctl.enqueue(b);
    },
    cancel() { f.port.postMessage({ op: 'cancel' }); f.port.close(); },
  }, { highWaterMark: 0 });
  headers['Content-Length'] = String(end + 1 - start);
  if (!r) return new Response(body, { status: 200, headers });
  headers['Content-Range'] = `bytes ${start}-${end}/${f.size}`;
  return new Response(body, { status: 206, headers });
}

// ---- share target (manifest.webmanifest share_target, docs/PWA.md) ----------

const SHARE_CACHE = 'cloakroom-share';
const SHARE_MAX_FILES = 100;
const SHARE_MAX_KEPT = 3;                // shares not picked up yet; older ones are dropped
const SHARE_MAX_AGE_MS = 24 * 3600e3;

const shareRedirect = (what) => Response.redirect(new URL('/?share=' + what, self.location.origin).href, 303);

/** Keeps a shared form's files and text client-side, then sends the page to
 * /?share=<id> (<created ms>-<64 random bits>). */
async function receiveShare(req) {
  let form;
  try { form = await req.formData(); } catch { return shareRedirect('failed'); }
  const str = (k) => { const v = form.get(k); return typeof v === 'string' ? v.slice(0, 16000) : ''; };
  const files = form.getAll('files').filter((f) => typeof f === 'object' && f !== null && typeof f.name === 'string');
  const meta = { created: Date.now(), title: str('title'), text: str('text'), url: str('url'), files: [] };
  if (files.length > SHARE_MAX_FILES) return shareRedirect('toomany');
  if (!files.length && !meta.title && !meta.text && !meta.url) return shareRedirect('empty');
  const id = `${meta.created}-${[...crypto.getRandomValues(new Uint8Array(8))].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
  const cache = await caches.open(SHARE_CACHE);
  await sweepShares(cache);
  try {
    for (const [i, f] of files.entries()) {
      await cache.put(`/__share/${id}/${i}`, new Response(f, { headers: { 'Content-Type': f.type || 'application/octet-stream' } }));
      meta.files.push({ name: f.name.slice(0, 255), type: f.type.slice(0, 255), size: f.size });
    }
    await cache.put(`/__share/${id}/meta`, new Response(JSON.stringify(meta), { headers: { 'Content-Type': 'application/json' } }));
  } catch {
    await dropShare(cache, id); // over quota: keep nothing half-written
    return shareRedirect('full');
  }
  return shareRedirect(id);
}

async function dropShare(cache, id) {
  for (const k of await cache.keys()) if (new URL(k.url).pathname.startsWith(`/__share/${id}/`)) await cache.delete(k);
}

/** Drops shares older than a day, and all but the newest SHARE_MAX_KEPT - 1. */
async function sweepShares(cache) {
  const ids = new Set();
  for (const k of await cache.keys()) {
    const m = /^\/__share\/(\d{13}-[0-9a-f]{16})\//.exec(new URL(k.url).pathname);
    if (m) ids.add(m[1]);
  }
  const newest = [...ids].sort().reverse();
  for (const [n, id] of newest.entries()) {
    if (n >= SHARE_MAX_KEPT - 1 || Date.now() - Number(id.slice(0, 13)) > SHARE_MAX_AGE_MS) await dropShare(cache, id);
  }
}

// A click on a notification shown by the worker (Android Chrome) opens the room's tab.
self.addEventListener('notificationclick', (ev) => {
  ev.notification.close();
  ev.waitUntil(self.clients.matchAll({ type: 'window' }).then((all) => (all[0] ? all[0].focus() : self.clients.openWindow('/'))));
});
