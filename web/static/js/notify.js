// Alerts while the tab is hidden (issue 14, item 3): an unread count in the
// title ("(3) Cloakroom"), a system notification when the user turned
// "Notify me" on (permission asked on that click, never on load), and an
// optional short tone. See docs/PWA.md.
//
// A notification says who and what kind — "Member 3F2A: New message" or
// "… sent a file" — and never the message text or the file name: what a
// notification shows leaves the page for the operating system (lock screen,
// notification history, sometimes a synced account), outside the room's
// encryption. There is deliberately no setting to show a preview.

const KEY = 'cloakroom.alerts';
const ACTIVE = new Set(['hashing', 'sending', 'delivering', 'receiving']);

let settings = load();
let unread = 0;
let baseTitle = '';
const shown = []; // notifications shown while hidden, closed when the tab is seen again
let audio = null; // AudioContext, made on a user gesture only (autoplay rules)

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || '{}');
    return { notify: s.notify === true, sound: s.sound === true };
  } catch { return { notify: false, sound: false }; }
}
function save() {
  try { localStorage.setItem(KEY, JSON.stringify(settings)); } catch { /* storage off: this page only */ }
}

const canNotify = () => typeof Notification === 'function';
const hidden = () => document.visibilityState === 'hidden';

/** Wires the "Notify me" and "Sound" toggles and the title count. Call once. */
export function initAlerts({ notifyToggle, soundToggle, note }) {
  document.addEventListener('visibilitychange', () => { if (!hidden()) clearUnread(); });
  if (!canNotify()) {
    notifyToggle.closest('label').hidden = true;
    settings.notify = false;
  } else {
    // Only on when the user asked and the browser agrees.
    notifyToggle.checked = settings.notify && Notification.permission === 'granted';
    notifyToggle.addEventListener('change', async () => {
      note.hidden = true;
      if (!notifyToggle.checked) { settings.notify = false; save(); return; }
      let p = Notification.permission;
      if (p === 'default') {
        try { p = await Notification.requestPermission(); } catch { p = 'denied'; }
      }
      settings.notify = p === 'granted';
      notifyToggle.checked = settings.notify;
      save();
      if (p !== 'granted') {
        note.textContent = 'Notifications are blocked for this site: allow them in the browser’s site settings.';
        note.hidden = false;
      }
    });
  }
  soundToggle.checked = settings.sound;
  soundToggle.addEventListener('change', () => {
    settings.sound = soundToggle.checked;
    save();
    if (settings.sound) { ensureAudio(); beep(); }
  });
  if (settings.sound) {
    // An AudioContext made without a gesture stays suspended: make it on the first one.
    const first = () => { ensureAudio(); document.removeEventListener('pointerdown', first, true); document.removeEventListener('keydown', first, true); };
    document.addEventListener('pointerdown', first, true);
    document.addEventListener('keydown', first, true);
  }
}

/** Listens to a room's chat and transfers: counts and announces what
 * arrives while the tab is hidden. name(id) is the member's display name. */
export function watchRoom(room, name) {
  const seen = new Set();
  room.addEventListener('chat', (e) => {
    const c = e.detail;
    if (c.mine || c.history) return;
    arrived(name(c.from), 'New message');
  });
  room.addEventListener('transfer', (e) => {
    const t = e.detail.transfer;
    if (t.direction === 'send' || seen.has(t.id)) return;
    seen.add(t.id);
    arrived(name(t.peer), 'sent a file');
  });
}

function arrived(who, what) {
  if (!hidden()) return;
  unread++;
  if (unread === 1) baseTitle = document.title.replace(/^\(\d+\) /, '');
  document.title = `(${unread}) ${baseTitle}`;
  if (settings.notify) notify(who, what);
  if (settings.sound) beep();
}

function clearUnread() {
  if (unread) document.title = baseTitle;
  unread = 0;
  for (const n of shown.splice(0)) n.close?.();
}

function notify(who, what) {
  if (!canNotify() || Notification.permission !== 'granted') return;
  const title = what === 'New message' ? who : `${who} sent a file`;
  const opts = { body: what === 'New message' ? 'New message' : 'Open the room to see it', tag: 'cloakroom', renotify: true, icon: '/icons/icon-192.png', silent: settings.sound };
  try {
    const n = new Notification(title, opts);
    n.onclick = () => { window.focus(); n.close(); };
    shown.push(n);
  } catch {
    // Android Chrome: only the service worker may show one.
    navigator.serviceWorker?.ready.then((r) => r.showNotification(title, opts)).catch(() => {});
  }
}

function ensureAudio() {
  if (audio) { if (audio.state === 'suspended') audio.resume().catch(() => {}); return; }
  const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
  if (AC) audio = new AC();
}

/** A short two-note chime, generated (no sound file). */
function beep() {
  if (!audio || audio.state !== 'running') return;
  const t = audio.currentTime;
  const g = audio.createGain();
  g.connect(audio.destination);
  g.gain.setValueAtTime(0.0001, t);
  g.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
  g.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
  for (const [f, at] of [[880, 0], [1320, 0.09]]) {
    const o = audio.createOscillator();
    o.type = 'sine';
    o.frequency.setValueAtTime(f, t + at);
    o.connect(g);
    o.start(t + at);
    o.stop(t + 0.3);
  }
}

// ---- wake lock during transfers ---------------------------------------------

/** Keeps the screen on while any transfer of room is active (sending or
 * receiving): a phone that sleeps suspends the page and stalls the transfer.
 * Silent where the Screen Wake Lock API is missing or refused. */
export function keepAwake(room) {
  const wl = navigator.wakeLock;
  if (!wl?.request) return;
  const active = new Set();
  let sentinel = null;
  let asking = false;
  const want = () => active.size > 0;
  const acquire = async () => {
    if (sentinel || asking || !want() || hidden()) return;
    asking = true;
    try {
      const s = await wl.request('screen');
      if (!want()) { s.release().catch(() => {}); return; }
      sentinel = s;
      s.addEventListener('release', () => { if (sentinel === s) sentinel = null; });
    } catch { /* refused (battery saver, no permission): transfers go on regardless */ } finally { asking = false; }
  };
  const release = () => {
    const s = sentinel;
    sentinel = null;
    s?.release().catch(() => {});
  };
  room.addEventListener('transfer', (e) => {
    const t = e.detail.transfer;
    const was = active.has(t.id);
    if (ACTIVE.has(t.state)) active.add(t.id); else active.delete(t.id);
    if (was === active.has(t.id)) return;
    if (want()) acquire(); else release();
  });
  // The browser drops the lock when the tab is hidden: ask again on return.
  document.addEventListener('visibilitychange', () => { if (!hidden()) acquire(); });
}
