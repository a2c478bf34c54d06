// The page: create or join a room, then the room view (members, chat, files).
// The room secret is read from the URL fragment, which is removed from the
// address bar at once; this tab keeps it in sessionStorage so a reload is a
// return, and a saved room keeps it encrypted on the device (stay-ui.js).
import * as C from './crypto.js';
import { el } from './dom.js';
import { Room } from './room.js';
import { ConnState, Path, Transport } from './protocol.js';
import { qrSVG, roomFromScan, startScanner, cameraError } from './qr.js';
import { IMAGE_TYPE, VIDEO_TYPE } from './transfer.js';
import { showPreview } from './poster.js';
import { initStreaming, setRoom, streamingVideo, forgetStreams } from './stream.js';
import { FeedView, linkify, initComposer, fitComposer, announceStatus, labelPresence } from './feed.js';
import { guardWindow, initDrop, folderFiles } from './drop.js';
import { initViewer } from './viewer.js';
import { initAlerts, watchRoom, keepAwake } from './notify.js';
import { initShare, shareIntoRoom, setupInviteShare } from './share.js';
import * as Stay from './stay-ui.js';
import { displayName, shortID } from './names.js';
import { setupControl, renderControl, controlStatus, controlKey } from './control.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// ?transport=auto|p2p|turn|relay: auto (default) tries a direct data channel,
// then one relayed by TURN, then the server's relay; the others force one path.
const transport = params.get('transport') || Transport.AUTO;
// ?wire=http: reach the server over the HTTP fallback from the start, as
// after a refused WebSocket (tests, and networks known to break WebSocket).
const wire = params.get('wire') === 'http' ? 'http' : undefined;
// ?order=sequential: fetch files from the members who hold them lowest chunk
// first (rarest first otherwise: quicker for everyone in a swarm).
const sequential = params.get('order') === 'sequential';
// ?relayWait=MS: how long a send waits for a peer-to-peer session before a
// recipient starts on the relay (default sender.js RELAY_WAIT_MS; -1: the
// relay only after every rung failed).
const relayWait = params.has('relayWait') ? Number(params.get('relayWait')) : null;

let room = null;
const transferViews = new Map(); // file id -> {li, …}
const objectURLs = new Set();
const feedView = new FeedView({ feed: $('feed'), empty: $('feed-empty'), button: $('new-messages'), announcer: $('chat-announce') });

function show(id) {
  for (const s of ['home', 'room', 'unsupported']) $(s).hidden = s !== id;
}


export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let i = -1;
  do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** A member's display name (names.js: chosen or generated; not unique, not verified). */
function memberName(id) {
  if (room && id === room.id) return 'You';
  return displayName(id);
}
/** A stable hue per member, so people can tell each other apart. */
function hue(id) { return parseInt(id.slice(0, 6), 16) % 360; }
const initials = (name) => name.split(' ').filter(Boolean).slice(0, 2).map((w) => [...w][0]).join('').toUpperCase();
function avatar(id) {
  const a = el('span', { class: 'avatar', text: initials(displayName(id)) || shortID(id).slice(0, 2), 'aria-hidden': 'true' });
  a.style.setProperty('--hue', hue(id));
  return a;
}

// ---- start ----------------------------------------------------------------

function start() {
  initStreaming();
  initShare($('share-bar')); // a share from the phone's share sheet (share.js)
  initAlerts({ notifyToggle: $('notify-toggle'), soundToggle: $('sound-toggle'), note: $('notify-note') });
  if (!C.hasWebCrypto()) {
    $('unsupported-text').textContent = 'This page needs a secure connection to encrypt: open it over HTTPS (or on localhost).';
    show('unsupported');
    return;
  }
  $('create').addEventListener('click', () => enter(C.newSecret()));
  $('join-form').addEventListener('submit', (ev) => { ev.preventDefault(); joinFromInput(); });
  $('leave').addEventListener('click', leave);
  $('scan').addEventListener('click', openScanner);
  $('scanner-cancel').addEventListener('click', closeScanner);
  $('scanner').addEventListener('close', () => { if (!$('scanner').open) closeScanner(); }); // also Escape
  const frag = location.hash.slice(1);
  if (frag) {
    // Read the secret, then take it out of the address bar and history.
    history.replaceState(null, '', location.pathname + location.search);
    try {
      const { secret } = C.parseInvite(frag);
      enter(secret, null, { invited: true });
      return;
    } catch (e) {
      showJoinError(e.message);
    }
  }
  // A reload, Back or an evicted tab: back to this tab's room as the same member.
  const kept = !frag && Stay.loadSession();
  if (kept) {
    enter(kept.secret, kept);
    return;
  }
  show('home');
  Stay.initHome((secret, saved) => enter(secret, saved));
}

function showJoinError(msg) {
  show('home');
  $('join-error').textContent = msg ? msg[0].toUpperCase() + msg.slice(1) : '';
  $('join-error').hidden = !msg;
}

function joinFromInput() {
  let inv;
  try {
    inv = C.parseInvite($('join-input').value);
  } catch (e) {
    showJoinError(e.message);
    return;
  }
  if (inv.server && inv.server !== location.origin) {
    // A room on another server: go there; the secret stays in the fragment.
    location.assign(inv.server + '/#' + C.fragment(inv.secret));
    return;
  }
  $('join-input').value = '';
  enter(inv.secret, null, { invited: true });
}

// ---- joining by QR code -----------------------------------------------------

let scanner = null;
let scanRun = 0; // bumped on every open and close, so a late camera start stops itself

function setScanStatus(state, text) {
  $('scanner').dataset.state = state;
  $('scanner-status').textContent = text;
}

async function openScanner() {
  const run = ++scanRun;
  setScanStatus('starting', 'Starting the camera…');
  $('scanner').showModal();
  try {
    const s = await startScanner($('scanner-video'), {
      onText: onScanned,
      onError: (msg) => setScanStatus('error', msg),
    });
    if (run !== scanRun) { s.stop(); return; }
    scanner = s;
    setScanStatus('scanning', 'Point the camera at the QR code shown in the room.');
  } catch (e) {
    if (run === scanRun) setScanStatus('error', cameraError(e));
  }
}

function onScanned(text) {
  let secret;
  try {
    secret = roomFromScan(text, location.origin);
  } catch (e) {
    setScanStatus('rejected', e.message); // keep scanning: the right code may come next
    return;
  }
  closeScanner();
  enter(secret, null, { invited: true });
}

function closeScanner() {
  scanRun++;
  scanner?.stop();
  scanner = null;
  if ($('scanner').open) $('scanner').close();
}

/** Joins secret's room: as this tab's member if it was in it (kept: the
 * session, or a saved room just opened), else as a new member. */
async function enter(secret, kept = null, { invited = false } = {}) {
  showJoinError('');
  $('create').disabled = true;
  $('join-button').disabled = true;
  setStatus('connecting', 'Connecting…');
  try {
    room = await Room.join(secret, { transport, sequential, wire, ...(await Stay.memberFor(secret, kept)) });
    if (Number.isFinite(relayWait)) room.relayWait = relayWait;
    setRoom(room);
  } catch (e) {
    room = null;
    $('create').disabled = false;
    $('join-button').disabled = false;
    $('conn-status').hidden = true;
    showJoinError('Could not join: ' + e.message);
    Stay.initHome((s, k) => enter(s, k)); // the saved rooms, also after a failed return
    return;
  }
  setupRoomView(secret);
  // A link or code with one wrong character is another, empty room: say so.
  if (invited && room.members.size === 0) {
    appendItem(el('li', { class: 'item notice empty-room', text: 'Nobody else is in this room yet. If you expected others here, check the link or code: one wrong character opens a different, empty room.' }));
  }
}

async function leave() {
  const { leave: yes, forgetSaved } = await Stay.askLeave();
  if (!yes) return;
  $('leave').disabled = true;
  await room?.leave();
  await Stay.forgetTab({ forgetSaved });
  room = null;
  for (const u of objectURLs) URL.revokeObjectURL(u);
  objectURLs.clear();
  forgetStreams();
  location.replace(location.pathname + location.search);
}

// ---- room view ------------------------------------------------------------

function setStatus(state, text) {
  const s = $('conn-status');
  s.hidden = false;
  s.dataset.state = state;
  s.textContent = text;
  // Behind a proxy that refuses WebSocket the room runs over the HTTP fallback.
  if (room) s.dataset.wire = room.wire;
  s.title = room?.wire === 'http' ? 'connected over the HTTP fallback (WebSocket refused on this network)' : '';
}

function setupRoomView(secret) {
  show('room');
  $('leave').hidden = false;
  const link = C.link(location.origin, secret);
  $('invite-link').value = link;
  $('invite-qr').replaceChildren(qrSVG(link, 'QR code of the room link'));
  $('mini-code').textContent = C.miniCode(secret);
  $('copy-link').addEventListener('click', () => copy(link, $('copy-link')));
  setupInviteShare($('share-link'), link);
  $('copy-code').addEventListener('click', () => copy(C.miniCode(secret), $('copy-code')));
  $('invite-link').addEventListener('focus', (e) => e.target.select());
  // A fresh room: keep the invite open; joining someone else's: fold it away on phones.
  if (matchMedia('(max-width: 899px)').matches && room.members.size > 0) $('share').open = false;

  room.addEventListener('state', onState);
  room.addEventListener('members', renderMembers);
  room.addEventListener('chat', (e) => addChat(e.detail));
  room.addEventListener('notice', (e) => appendItem(el('li', { class: 'item notice', dataset: { code: e.detail.code } },
    el('p', { class: 'text', text: `The server refused a message: ${e.detail.text}` }))));
  room.addEventListener('chatsent', (e) => chatSent(e.detail.id));
  room.addEventListener('transfer', (e) => renderTransfer(e.detail.transfer));
  watchRoom(room, memberName); // unread count, notifications, sound (notify.js)
  keepAwake(room); // screen wake lock while a transfer runs
  // Transfer control (control.js): the receiving policy; a sender's Retry follows presence.
  setupControl(room, { formatBytes });
  room.addEventListener('members', () => { for (const v of transferViews.values()) if (mine(v.t)) renderTransfer(v.t, true); });
  onState({ detail: { state: room.state } });
  Stay.attach(room, { appendItem, renderMembers, initials });
  renderMembers();

  $('composer').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('chat-input');
    const text = input.value;
    if (!text.trim()) return;
    try {
      await room.sendChat(text);
      input.value = '';
      fitComposer(input);
    } catch (e) {
      flash(e.message);
    }
  });
  $('file-input').addEventListener('change', (ev) => {
    const files = [...ev.target.files];
    ev.target.value = '';
    sendFiles(files);
  });
  $('folder-input').addEventListener('change', (ev) => {
    const { files, truncated } = folderFiles(ev.target);
    ev.target.value = '';
    if (truncated) flash(`Only the first ${files.length} files of the folder are sent.`);
    sendFiles(files);
  });
  $('chat-input').focus();
  shareIntoRoom($('chat-input'), sendFiles);
  window.addEventListener('beforeunload', (ev) => {
    // A reload comes back to the room as the same member (stay-ui.js), but
    // sends stop, receptions start over and queued chat is lost.
    if (room?.pendingChats || [...transferViews.values()].some((v) => ['hashing', 'sending', 'delivering', 'receiving'].includes(v.t.state))) {
      ev.preventDefault();
    }
  });
}

async function sendFiles(files) {
  if (!room) return;
  for (const f of files) {
    try { await room.sendFile(f); } catch { /* shown on its card */ }
  }
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    const old = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = old; }, 1500);
  } catch {
    flash('Copy failed: select the text and copy it by hand.');
  }
}

function onState(e) {
  const { state, error } = e.detail;
  const text = {
    connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', restored: 'Restored',
    closed: error ? `Disconnected: ${error}` : 'Left the room',
  }[state] || state;
  setStatus(state, text);
  announceStatus($('status-announce'), text);
  // The composer stays usable while reconnecting: messages wait and go out once the connection is back.
  const live = state === ConnState.CONNECTED || state === ConnState.RESTORED;
  $('composer').classList.toggle('offline', !live);
  $('chat-input').placeholder = state === ConnState.RECONNECTING ? 'Message (sent when the connection is back)' : 'Message';
  // Transfers say whether they wait for the server; who is online is unknown meanwhile.
  for (const v of transferViews.values()) renderTransfer(v.t, true);
  if (room) renderMembers();
}

function renderMembers() {
  const list = $('member-list');
  const items = [el('li', { class: 'member me', dataset: { member: room.id, online: 'true' }, title: `You · member ${shortID(room.id)}` },
    avatar(room.id), el('span', { class: 'name', text: `${displayName(room.id)} (you)` }), el('span', { class: 'dot online', title: 'online' }))];
  // While the connection is down nobody's presence is known: shown offline.
  const live = room.state === ConnState.CONNECTED || room.state === ConnState.RESTORED;
  const on = (m) => live && m.online && m.verified; // verified: answered our sealed challenge
  const others = [...room.members.values()].sort((a, b) => (on(b) - on(a)) || a.id.localeCompare(b.id));
  for (const m of others) {
    items.push(el('li', { class: 'member', dataset: { member: m.id, online: String(on(m)) }, title: `Member ${shortID(m.id)} · names are not verified` },
      avatar(m.id), el('span', { class: 'name', text: memberName(m.id) }),
      el('span', { class: `dot ${on(m) ? 'online' : 'offline'}`, title: on(m) ? 'online' : (live ? 'offline' : 'unknown while reconnecting') })));
  }
  list.replaceChildren(...items);
  const online = others.filter(on).length;
  $('member-count').textContent = live ? `· ${online + 1} online` : '· reconnecting';
}

function flash(msg) {
  const li = el('li', { class: 'item notice', text: msg ? msg[0].toUpperCase() + msg.slice(1) : '' });
  appendItem(li);
}

function appendItem(li) { feedView.add(li); } // follows it when the reader is at the bottom (feed.js)

function timeText(t) { return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }); }

function addChat({ id, from, text, mine, time, pending, sent, sess, seq, late, missing, history }) {
  if (missing > 0) {
    appendItem(el('li', { class: 'item gap', dataset: { from },
      text: `${missing === 1 ? 'A message' : `${missing} messages`} from ${memberName(from)} did not arrive` }));
  }
  const ts = sent || time;
  const li = el('li', { class: `item chat${mine ? ' mine' : ''}${pending ? ' pending' : ''}${late ? ' late' : ''}${history ? ' history' : ''}`,
    dataset: { id, from, sess: sess || '', seq: String(seq || 0), ts: String(ts) } },
    mine ? null : avatar(from),
    el('div', { class: 'bubble' },
      el('div', { class: 'meta' }, el('span', { class: 'who', text: memberName(from) }), el('time', { text: timeText(sent || time) }),
        pending ? el('span', { class: 'sending', text: 'Sending…' }) : null,
        late ? el('span', { class: 'late-note', text: 'arrived late' }) : null,
        history ? el('span', { class: 'history-note', text: 'earlier' }) : null),
      el('p', { class: 'text' }, ...linkify(text))));
  // A late message goes before its sender's later ones: the sender's order.
  const next = late && [...$('feed').querySelectorAll('li.chat')].find((x) =>
    x.dataset.from === from && x.dataset.sess === sess && Number(x.dataset.seq) > seq);
  // History (sent before we joined) goes in stamp order among what is shown.
  const after = history && [...$('feed').querySelectorAll('li.item[data-ts]')].find((x) => Number(x.dataset.ts) > ts);
  feedView.add(li, next || after || null);
  if (!mine && !history) feedView.announce(`${memberName(from)}: ${text}`);
}

/** A chat of ours reached the server. */
function chatSent(id) {
  const li = [...$('feed').querySelectorAll('li.chat.pending')].find((x) => x.dataset.id === id);
  if (!li) return;
  li.classList.remove('pending');
  li.querySelector('.sending')?.remove();
}

// ---- transfers ------------------------------------------------------------

const VIDEO_EXT = /\.(mp4|m4v|webm|mkv|mov|ogv)$/i;
const IMAGE_EXT = /\.(jpe?g|png|gif|webp|avif)$/i;

function mediaKind(t) {
  if (IMAGE_TYPE.test(t.type) || IMAGE_EXT.test(t.name)) return 'image';
  if (VIDEO_TYPE.test(t.type) || VIDEO_EXT.test(t.name)) {
    const v = document.createElement('video');
    if (!t.type || v.canPlayType(t.type) !== '' || /\.(mp4|m4v|webm|mov)$/i.test(t.name)) return 'video';
  }
  return 'file';
}

function extLabel(name) {
  const m = /\.([a-z0-9]{1,4})$/i.exec(name);
  return m ? m[1].toUpperCase() : 'FILE';
}

function statusText(t) {
  const pct = `${Math.floor(t.fraction * 100)}%`;
  const speed = t.speed > 0 && t.size >= 1e6 ? ` · ${formatBytes(Math.round(t.speed))}/s` : '';
  if (t.note && ['sending', 'delivering'].includes(t.state)) return `${pct} · ${t.note}`;
  if (room?.state === ConnState.RECONNECTING && t.path === Path.RELAY && ['sending', 'delivering', 'receiving'].includes(t.state)) {
    return `${pct} · waiting for the connection to the server`;
  }
  const c = controlStatus(t, { formatBytes, memberName }); // per-recipient sends, offers, cancels (control.js)
  if (c !== null) return c;
  switch (t.state) {
    case 'hashing': return 'Preparing…';
    case 'waiting': return 'Waiting for someone to come online…';
    case 'sending': return t.path === 'connecting' ? 'Connecting…' : `Sending via ${t.path} · ${pct}${speed}`;
    case 'delivering': {
      const done = [...t.recipients.values()].filter((r) => r.state === 'delivered').length;
      return `Uploaded via ${t.path} · delivered to ${done} of ${t.recipients.size}`;
    }
    case 'receiving': return `Receiving via ${t.path} · ${pct}${speed} · keep this page open: a reload starts this file over`;
    case 'done': {
      const secs = ((t.finished - t.started) / 1000).toFixed(1);
      if (t.direction === 'send') return `Delivered to ${t.recipients.size} via ${t.path} · ${secs} s${speed}`;
      return `Received via ${t.path} · ${secs} s${speed}`;
    }
    case 'failed': return `Failed: ${t.error}`;
    default: return t.state;
  }
}

const mine = (t) => t.direction === 'send';

function renderTransfer(t, force = false) {
  let v = transferViews.get(t.id);
  if (!v) {
    const mine = t.direction === 'send';
    v = { t, li: null, progress: el('progress', { max: '1', value: '0' }), status: el('p', { class: 'status' }), media: null, shown: false, last: 0 };
    v.helpers = el('p', { class: 'helpers muted small' });
    v.li = el('li', { class: `item file${mine ? ' mine' : ''}`, dataset: { file: t.id, direction: t.direction, ts: String(Date.now()), origin: t.peer } },
      mine ? null : avatar(t.peer),
      el('div', { class: 'bubble' },
        el('div', { class: 'meta' }, el('span', { class: 'who', text: mine ? 'You' : memberName(t.peer) }), el('time', { text: timeText(Date.now()) })),
        el('div', { class: 'file-head' },
          el('span', { class: `file-icon ${mediaKind(t)}`, 'aria-hidden': 'true', text: extLabel(t.name) }),
          el('div', {},
            el('div', { class: 'file-name', text: t.name }),
            el('div', { class: 'file-info muted', text: `${formatBytes(t.size)} · ${t.type || 'file'}` }))),
        v.progress, v.status, mine ? null : v.helpers));
    transferViews.set(t.id, v);
    appendItem(v.li);
  }
  v.t = t;
  showPreview(v.li, t); // poster and duration from the manifest (poster.js)
  // Throttle DOM updates while bytes flow; always render state changes.
  const now = performance.now();
  const key = `${t.state}|${t.note || ''}|${controlKey(t)}`;
  if (!force && v.state === key && now - v.last < 100) return;
  v.last = now;
  v.state = key;
  v.li.dataset.state = t.state;
  if (t.path) v.li.dataset.path = t.path;
  if (t.storage) v.li.dataset.storage = t.storage;
  if (t.rounds) v.li.dataset.rounds = String(t.rounds);
  if (t.uploaded) v.li.dataset.uploaded = String(t.uploaded);
  v.progress.value = t.fraction;
  v.progress.hidden = ['done', 'failed', 'cancelled', 'declined', 'offered'].includes(t.state);
  v.status.textContent = statusText(t);
  renderControl(v, t, { el, memberName, formatBytes, room });
  if (!mine(t)) {
    // Who shared it, and how many members' copies it came from (the swarm).
    const n = t.helpers || 0;
    v.li.dataset.helpers = String(n);
    v.helpers.textContent = `Shared by ${memberName(t.peer)}${n ? ` · ${n} ${n === 1 ? 'member' : 'members'} helped` : ''}`;
  }
  v.status.classList.toggle('error', t.state === 'failed');
  // A video arriving plays while it arrives where it can (stream.js).
  if (!v.media && t.state === 'receiving' && mediaKind(t) === 'video') {
    v.media = streamingVideo(t);
    if (v.media) v.li.querySelector('.bubble').insertBefore(v.media, v.status);
  }
  if (t.state === 'done') {
    v.li.dataset.sha256 = t.sha256;
    if (!v.shown && t.file) { v.shown = true; showMedia(v, t); }
  }
}

function showMedia(v, t) {
  const url = URL.createObjectURL(t.file);
  objectURLs.add(url);
  const kind = mediaKind(t);
  const bubble = v.li.querySelector('.bubble');
  let media;
  if (kind === 'image') {
    media = el('img', { class: 'media', src: url, alt: t.name, loading: 'lazy' });
  } else if (kind === 'video' && v.media && !v.media.error) {
    media = null; // already playing from /stream/ (stream.js): it reads the complete file now
  } else if (kind === 'video') {
    v.media?.remove(); // a stream that failed: the complete file instead
    media = el('video', { class: 'media', src: url, controls: '', playsinline: '', preload: 'metadata' });
    media.addEventListener('error', () => {
      media.replaceWith(el('p', { class: 'muted small', text: 'This browser cannot play this video; save it instead.' }));
    }, { once: true });
  }
  if (media) bubble.insertBefore(media, v.status);
  // The receiver saves its copy; the sender has the file already: a photo or
  // video is shown above, anything else opens in a tab (what the browser
  // cannot show, it saves).
  if (t.direction === 'send') {
    if (!media) bubble.append(el('div', { class: 'actions' }, el('a', { class: 'button small', href: url, target: '_blank', rel: 'noopener', text: 'Open' })));
    return;
  }
  bubble.append(el('div', { class: 'actions' }, el('a', { class: 'button small', href: url, download: t.name, text: 'Save' })));
}

// Drop, paste and folders (drop.js), the composer, the photo viewer, presence labels (feed.js, viewer.js).
initDrop({ zone: $('room'), send: sendFiles, note: flash });
guardWindow();
initComposer($('composer'), $('chat-input'));
initViewer($('feed'), $('viewer'));
labelPresence($('member-list'));
start();
