// Sharing into a room from the phone's share sheet (the manifest's
// share_target) and the invite's "Share…" button (Web Share API). See
// docs/PWA.md.
//
// A share is a POST /share that the service worker (sw.js) answers itself:
// it keeps the files in the Cache API ("cloakroom-share", at most a day,
// deleted once picked up) and redirects to /?share=<id>. The server never
// sees them; when no worker is active yet, the server's own /share answers
// /?share=unavailable without reading the body.

import { el } from './dom.js';

const CACHE = 'cloakroom-share';
const SESSION_KEY = 'cloakroom.share';
const ID = /^\d{13}-[0-9a-f]{16}$/;
const PROBLEMS = {
  unavailable: 'Sharing into Cloakroom works once the page has been opened here before. It is open now: share again.',
  failed: 'The shared files could not be read. Share them again, or send them with the paperclip.',
  toomany: 'Too many files in one share (at most 100). Share fewer at a time.',
  full: 'Not enough storage on this device to hold the shared files. Free some space, or send them with the paperclip.',
  empty: 'The share held nothing to send.',
  gone: 'The shared files are no longer here (they are kept for a day). Share them again.',
};

let pending = null; // {id, meta} of a share not yet sent
let bar = null;
let loaded = Promise.resolve(); // initShare's reading of the share, awaited before the room uses it
// Whether the user has clicked or typed in this page since the share was
// shown: then they entered the room themselves with the banner in view.
// (navigator.userActivation is no guide: Chromium carries it over
// same-origin navigations.)
let picked = false;


function session(v) {
  try {
    if (v === undefined) return sessionStorage.getItem(SESSION_KEY);
    if (v === null) sessionStorage.removeItem(SESSION_KEY); else sessionStorage.setItem(SESSION_KEY, v);
  } catch { /* storage off */ }
  return null;
}

function showBar(text, ...buttons) {
  bar.replaceChildren(el('span', { class: 'share-text', text }), ...buttons);
  bar.hidden = false;
}
function hideBar() { bar.hidden = true; bar.replaceChildren(); }
function button(text, cls, fn) {
  const b = el('button', { class: `small ${cls}`, type: 'button', text });
  b.addEventListener('click', fn);
  return b;
}
const count = (n) => (n === 1 ? '1 shared file' : `${n} shared files`);

/** Reads a share the page was opened for (?share=… or this tab's session),
 * takes it out of the address bar and shows the start-page banner. */
export function initShare(barEl) {
  bar = barEl;
  loaded = load().catch(() => {});
  return loaded;
}

async function load() {
  const params = new URLSearchParams(location.search);
  let id = params.get('share');
  if (id !== null) {
    params.delete('share');
    const q = params.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
    session(ID.test(id) ? id : null);
  } else {
    id = session();
  }
  if (!id) return;
  if (!ID.test(id)) { showProblem(PROBLEMS[id] ? id : 'failed'); return; }
  const meta = await readMeta(id);
  if (!meta) { session(null); showProblem('gone'); return; }
  pending = { id, meta };
  const mark = (e) => { if (e.isTrusted) picked = true; };
  document.addEventListener('pointerdown', mark, true);
  document.addEventListener('keydown', mark, true);
  if (!meta.files.length) { showBar('Open or join a room: the shared text goes into the message box.', button('Discard', 'ghost', discard)); return; }
  showBar(`Open or join a room to send the ${count(meta.files.length)}.`, button('Discard', 'ghost', discard));
}

function showProblem(code) {
  showBar(PROBLEMS[code], button('OK', 'ghost', hideBar));
}

async function readMeta(id) {
  try {
    const c = await caches.open(CACHE);
    const r = await c.match(`/__share/${id}/meta`);
    const m = r && await r.json();
    if (!m || !Array.isArray(m.files) || Date.now() - m.created > 24 * 3600e3) return null;
    return m;
  } catch { return null; }
}

async function forget(id) {
  session(null);
  try {
    const c = await caches.open(CACHE);
    for (const k of await c.keys()) if (new URL(k.url).pathname.startsWith(`/__share/${id}/`)) await c.delete(k);
  } catch { /* gone already */ }
}

async function discard() {
  const p = pending;
  pending = null;
  hideBar();
  if (p) await forget(p.id);
}

/** The room view is up: shared text goes into the composer; shared files
 * are sent — at once when the user entered the room after seeing the
 * banner, after a confirm when the page came back into a room by itself. */
export async function shareIntoRoom(composerInput, sendFiles) {
  await loaded; // a room entered from the address bar may come up before the share is read
  const p = pending;
  if (!p) return;
  const text = [p.meta.title, p.meta.text, p.meta.url].filter(Boolean).join('\n');
  if (text && !composerInput.value) composerInput.value = text;
  if (!p.meta.files.length) { pending = null; hideBar(); await forget(p.id); return; }
  const send = async () => {
    if (pending !== p) return;
    pending = null;
    hideBar();
    let files;
    try {
      const c = await caches.open(CACHE);
      files = await Promise.all(p.meta.files.map(async (f, i) => {
        const r = await c.match(`/__share/${p.id}/${i}`);
        if (!r) throw new Error('missing');
        return new File([await r.blob()], f.name, { type: f.type });
      }));
    } catch {
      await forget(p.id);
      showProblem('gone');
      return;
    }
    await forget(p.id); // the File objects keep the bytes as long as the room needs them
    sendFiles(files);
  };
  if (picked) { await send(); return; }
  showBar(`Send the ${count(p.meta.files.length)} to this room?`, button('Send', 'primary', send), button('Discard', 'ghost', discard));
}

/** Shows the invite's "Share…" button where the Web Share API exists. */
export function setupInviteShare(btn, link) {
  if (typeof navigator.share !== 'function' || (navigator.canShare && !navigator.canShare({ url: link }))) return;
  btn.hidden = false;
  btn.addEventListener('click', () => {
    navigator.share({ title: 'Cloakroom room', url: link }).catch((e) => {
      if (e.name !== 'AbortError') console.info('cloakroom: share failed:', e.name);
    });
  });
}
