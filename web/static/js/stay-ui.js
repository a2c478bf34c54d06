// The page side of staying in the room (issue 14): this tab's session
// (stay.js) kept up to date, saved rooms (saved.js) on the start page and
// from the room, the Leave confirmation, display names (names.js) sent and
// shown, and the "joined" / "left" lines of the feed. app.js calls:
// memberFor (before Room.join), attach (once in the room), initHome (on the
// start page) and askLeave / forgetTab (Leave).
import * as C from './crypto.js';
import { Signal } from './protocol.js';
import { names, displayName, shortID, MAX_NAME_CHARS } from './names.js';
import * as S from './saved.js';
import { el } from './dom.js';
import { loadSession, saveSession, clearSession, newKeptIdentity, roomIdentity, validKept, keepCounter, keptCounter, resetCounter } from './stay.js';

const $ = (id) => document.getElementById(id);
/** A member who went offline and is back within this long (a reload, a
 * phone waking its tab) gets no "left" line. */
export const GRACE_MS = 15000;

let session = null; // {secret, ident, joined, name, saved, savedKey (raw b64u), feed}
let room = null;
let ui = null;      // {appendItem, renderMembers, initials} from app.js

export { loadSession, displayName };

/** The kept member to join secret as: this tab's session if it is of
 * this room, the saved room's (kept from initHome's Open), or a new one.
 * Resolves Room.join's options {member, joined, feed}. */
export async function memberFor(secret, kept = null) {
  const s = kept ?? loadSession();
  const same = s && C.toHex(s.secret) === C.toHex(secret);
  const ident = same ? s.ident : await newKeptIdentity();
  session = {
    secret, ident, joined: same && s.joined ? s.joined : Date.now(), name: same ? s.name || '' : '',
    saved: same ? s.saved || '' : '', savedKey: same ? s.savedKey || '' : '', feed: same ? s.feed || [] : [],
  };
  names.reset(ident.member, session.name);
  // The highest signal counter this identity used: this tab's (a reload), or the saved
  // record's. A floor too high costs nothing (64-bit counters), so take both.
  let floor = keptCounter();
  if (kept?.ctr && /^[0-9]{1,20}$/.test(kept.ctr) && BigInt(kept.ctr) > floor) floor = BigInt(kept.ctr);
  resetCounter(floor);
  return {
    member: { member: ident.member, ident: await roomIdentity(ident) }, joined: kept?.fresh ? 0 : session.joined, feed: session.feed,
    counterFloor: floor + 1n, onCounter: keepCounter,
  };
}

function persist() {
  persistQueued = false;
  if (!session) return;
  if (room) session.feed = room.library.chat;
  saveSession(session);
}

// Written once per burst of chat (a hist signal brings up to 100 at once).
let persistQueued = false;
function schedulePersist() {
  if (persistQueued) return;
  persistQueued = true;
  setTimeout(persist, 0);
}

// ---- the room ------------------------------------------------------------------

/** Wires the room view: session upkeep, names, presence lines, saving. */
export function attach(r, helpers) {
  room = r;
  ui = helpers;
  persist();
  room.addEventListener('chat', schedulePersist);
  addEventListener('pagehide', () => { if (persistQueued) persist(); });
  room.addEventListener('verified', (e) => sendName(e.detail.member));
  room.addEventListener('name', (e) => names.set(e.detail.member, e.detail.name));
  room.addEventListener('presence', (e) => onPresence(e.detail));
  room.addEventListener('members', () => { for (const id of room.members.keys()) known.add(id); });
  for (const id of room.members.keys()) known.add(id);
  names.addEventListener('change', (e) => renamed(e.detail.member));
  // Names on what others' code puts in the feed (bubbles, cards): the short
  // id in a title (names are not unique), and kept current on a rename.
  new MutationObserver((recs) => {
    for (const rec of recs) for (const n of rec.addedNodes) if (n.nodeType === 1) labelItem(n);
  }).observe($('feed'), { childList: true, subtree: true });

  const input = $('name-input');
  input.value = names.of(room.id);
  input.maxLength = MAX_NAME_CHARS;
  $('name-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = names.setOwn(input.value);
    input.value = n;
    session.name = names.own;
    persist();
    updateSaved();
    for (const m of room.members.values()) if (m.online && m.verified) sendName(m.id);
  });
  $('save-room').addEventListener('click', openSave);
  $('save-form').addEventListener('submit', onSave);
  $('save-cancel').addEventListener('click', () => $('save-dialog').close());
  if (!S.canSave()) $('save-room').hidden = true;
  // Phones: folded under the members, like the invite (the feed comes first).
  if (matchMedia('(max-width: 899px)').matches) $('you').open = false;
  // Your name in the members list opens the name field.
  $('member-list').addEventListener('click', (ev) => {
    if (!ev.target.closest('li.me')) return;
    $('you').open = true;
    $('name-input').focus();
  });
  showSaved();
  // The chat this tab had before a reload, once (hist signals bringing it again are dropped).
  room.replayRestored();
  // The room was opened: its saved copy says when.
  if (session.saved) S.getSaved(session.saved).then((rec) => rec && S.putSaved({ ...rec, opened: Date.now() })).catch(() => {});
  // The saved copy notes the highest signal counter used when the page goes away (reopened elsewhere: above it).
  addEventListener('pagehide', noteCounter);
  document.addEventListener('visibilitychange', () => { if (document.hidden) noteCounter(); });
}

function noteCounter() {
  if (!session?.saved) return;
  const c = keptCounter();
  S.getSaved(session.saved).then((rec) => rec && (!rec.ctr || BigInt(rec.ctr) < c) && S.putSaved({ ...rec, ctr: String(c) })).catch(() => {});
}

function sendName(member) {
  room.p2p.sendSignal(member, { kind: Signal.NAME, session: C.toHex(C.randomBytes(8)), name: names.of(room.id) }).catch(() => {});
}

/** Marks the author names (.who) in n with their member: the short id in
 * a title, and data-name-of for a later rename. */
function labelItem(n) {
  const whos = n.matches('.who') ? [n] : n.querySelectorAll('.who');
  for (const who of whos) {
    const li = who.closest('[data-from], [data-origin]');
    const id = li?.dataset.from || li?.dataset.origin;
    if (!id || !C.validUUID(id) || who.dataset.nameOf) continue;
    who.title = `Member ${shortID(id)} (names are chosen by each member and not verified)`;
    who.dataset.nameOf = id;
  }
}

function renamed(member) {
  ui.renderMembers?.();
  if (member === room.id) return; // own bubbles say "You"
  for (const w of document.querySelectorAll('#feed .who[data-name-of]')) {
    if (w.dataset.nameOf !== member) continue;
    w.textContent = displayName(member);
    const av = w.closest('li')?.querySelector(':scope > .avatar');
    if (av) av.textContent = ui.initials(displayName(member));
  }
  for (const li of document.querySelectorAll('#feed li.presence')) {
    if (li.dataset.member === member) li.firstChild.textContent = presenceText(member, li.dataset.event);
  }
}

// ---- joined / left lines --------------------------------------------------------

const away = new Map(); // member -> timer of its "left" line, or 'shown' once shown
// Members seen in this room: a server that restarted forgets every member,
// so those coming back are announced as new ("join") — not a line.
const known = new Set();

function presenceText(member, event) {
  const n = displayName(member);
  return { join: `${n} joined`, left: `${n} left`, back: `${n} is back` }[event] || n;
}

function line(member, event) {
  const li = el('li', { class: 'item presence', dataset: { member, event }, title: `Member ${shortID(member)}` },
    el('span', { text: presenceText(member, event) }));
  ui.appendItem(li);
}

function onPresence({ member, event }) {
  const t = away.get(member);
  if (event === 'join' && known.has(member)) event = 'online';
  switch (event) {
    case 'join':
      clearTimeout(t);
      away.delete(member);
      known.add(member);
      line(member, 'join');
      break;
    case 'online':
      if (t === 'shown') line(member, 'back');
      else clearTimeout(t); // back within the grace period: no line
      away.delete(member);
      break;
    case 'offline':
      if (t) return;
      away.set(member, setTimeout(() => { away.set(member, 'shown'); line(member, 'left'); }, GRACE_MS));
      break;
    case 'leave':
      if (t !== 'shown') { clearTimeout(t); line(member, 'left'); }
      away.delete(member);
      known.delete(member);
      break;
  }
}

// ---- saving ------------------------------------------------------------------------

function showSaved() {
  const b = $('save-room');
  b.disabled = !!session.saved;
  b.textContent = session.saved ? 'Saved on this device' : 'Save this room on this device';
}

function openSave() {
  $('save-label').value = `Room with ${[...room.members.values()].slice(0, 2).map((m) => displayName(m.id)).join(', ') || 'nobody yet'}`.slice(0, S.MAX_LABEL_CHARS);
  $('save-pass').value = '';
  $('save-pass2').value = '';
  $('save-error').hidden = true;
  $('save-ok').disabled = false;
  $('save-dialog').showModal();
  $('save-pass').focus();
}

async function onSave(ev) {
  ev.preventDefault();
  const err = (msg) => { $('save-error').textContent = msg; $('save-error').hidden = false; };
  const pass = $('save-pass').value;
  if ([...pass].length < S.MIN_PASSPHRASE) return err(`The passphrase needs at least ${S.MIN_PASSPHRASE} characters.`);
  if (pass !== $('save-pass2').value) return err('The two passphrases differ.');
  $('save-ok').disabled = true;
  err('Encrypting…');
  try {
    const { record, key } = await S.sealRecord(payload($('save-label').value), pass);
    record.ctr = String(keptCounter());
    await S.putSaved(record);
    session.saved = record.id;
    session.savedKey = await exportKey(key);
    persist();
    showSaved();
    $('save-dialog').close();
    $('save-room').focus();
  } catch (e) {
    $('save-ok').disabled = false;
    err(`Could not save: ${e.message}`);
  }
}

function payload(label) {
  return { secret: C.b64u(session.secret), ident: session.ident, name: names.own, label };
}

const exportKey = async (key) => C.b64u(new Uint8Array(await crypto.subtle.exportKey('raw', key)));
const importKey = (raw) => crypto.subtle.importKey('raw', C.unb64u(raw), 'AES-GCM', true, ['encrypt', 'decrypt']);

/** A rename is kept in the saved copy too (sealed again with its key, held
 * by this tab since the room was saved or opened). */
async function updateSaved() {
  if (!session.saved || !session.savedKey) return;
  try {
    const rec = await S.getSaved(session.saved);
    if (!rec) return;
    const key = await importKey(session.savedKey);
    const old = await S.openWith(rec, key);
    await S.putSaved(await S.resealRecord(rec, key, { ...payload(old.label), label: old.label }));
  } catch (e) {
    console.info('cloakroom: the saved room keeps its old name:', e.message);
  }
}

// ---- leaving ------------------------------------------------------------------------

/** Asks before leaving; resolves {leave, forgetSaved}. */
export function askLeave() {
  const d = $('leave-dialog');
  const saved = !!session?.saved;
  $('leave-saved').hidden = !saved;
  $('leave-unsaved').hidden = saved;
  $('leave-forget').checked = false;
  return new Promise((resolve) => {
    const done = (leave) => {
      $('leave-form').removeEventListener('submit', ok);
      $('leave-cancel').removeEventListener('click', cancel);
      d.removeEventListener('cancel', cancel);
      if (d.open) d.close();
      resolve({ leave, forgetSaved: leave && saved && $('leave-forget').checked });
    };
    const ok = (ev) => { ev.preventDefault(); done(true); };
    const cancel = (ev) => { ev?.preventDefault(); done(false); };
    $('leave-form').addEventListener('submit', ok);
    $('leave-cancel').addEventListener('click', cancel);
    d.addEventListener('cancel', cancel);
    d.showModal();
    $('leave-cancel').focus();
  });
}

/** Forgets this tab's session (and the saved copy if asked). */
export async function forgetTab({ forgetSaved = false } = {}) {
  const id = session?.saved;
  session = null;
  clearSession();
  if (forgetSaved && id) await S.deleteSaved(id).catch(() => {});
}

// ---- the start page ------------------------------------------------------------------

/** Lists the saved rooms; open(secret, kept) enters one. */
let homeWired = false;
export async function initHome(open) {
  if (!S.canSave()) return;
  if (!homeWired) {
    homeWired = true;
    $('unlock-cancel').addEventListener('click', () => $('unlock-dialog').close());
    $('forget-cancel').addEventListener('click', () => $('forget-dialog').close());
  }
  await renderSaved(open);
}

async function renderSaved(open) {
  let recs = [];
  try { recs = await S.listSaved(); } catch (e) { console.info('cloakroom: no saved rooms:', e.message); }
  const list = $('saved-list');
  list.replaceChildren(...recs.map((rec) => {
    const when = new Date(rec.opened).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    const openB = el('button', { class: 'small primary', type: 'button', text: 'Open' });
    const forgetB = el('button', { class: 'small ghost', type: 'button', text: 'Forget' });
    openB.setAttribute('aria-label', `Open ${rec.label}`);
    forgetB.setAttribute('aria-label', `Forget ${rec.label}`);
    openB.addEventListener('click', () => unlock(rec, open));
    forgetB.addEventListener('click', () => forget(rec, open));
    return el('li', { class: 'saved-room', dataset: { saved: rec.id } },
      el('div', { class: 'saved-text' },
        el('span', { class: 'saved-label', text: rec.label }),
        el('span', { class: 'small muted', text: `Last opened ${when}` })),
      openB, forgetB);
  }));
  $('saved-rooms').hidden = recs.length === 0;
}


function unlock(rec, open) {
  const d = $('unlock-dialog');
  const form = $('unlock-form');
  $('unlock-label').textContent = rec.label;
  $('unlock-pass').value = '';
  $('unlock-error').hidden = true;
  $('unlock-ok').disabled = false;
  const submit = async (ev) => {
    ev.preventDefault();
    $('unlock-ok').disabled = true;
    $('unlock-error').hidden = true;
    try {
      const { payload: p, key } = await S.openRecord(rec, $('unlock-pass').value);
      const secret = C.unb64u(p.secret);
      if (secret.length !== C.SECRET_LEN || !validKept(p.ident)) throw new Error('the saved room is damaged');
      form.removeEventListener('submit', submit);
      d.close();
      open(secret, {
        secret, ident: p.ident, name: typeof p.name === 'string' ? p.name : '', saved: rec.id,
        savedKey: await exportKey(key), joined: 0, feed: [], fresh: true, ctr: typeof rec.ctr === 'string' ? rec.ctr : '',
      });
    } catch (e) {
      $('unlock-error').textContent = e instanceof S.WrongPassphrase
        ? 'Wrong passphrase. The saved room is unchanged: try again.'
        : `Could not open the saved room: ${e.message}`;
      $('unlock-error').hidden = false;
      $('unlock-ok').disabled = false;
      $('unlock-pass').select();
    }
  };
  form.onsubmit = null;
  form.addEventListener('submit', submit);
  d.addEventListener('close', () => form.removeEventListener('submit', submit), { once: true });
  d.showModal();
  $('unlock-pass').focus();
}

function forget(rec, open) {
  const d = $('forget-dialog');
  $('forget-label').textContent = rec.label;
  const submit = async (ev) => {
    ev.preventDefault();
    d.close();
    await S.deleteSaved(rec.id).catch(() => {});
    await renderSaved(open);
  };
  $('forget-form').addEventListener('submit', submit, { once: true });
  d.addEventListener('close', () => $('forget-form').removeEventListener('submit', submit), { once: true });
  d.showModal();
  $('forget-cancel').focus();
}
