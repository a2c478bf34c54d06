// Transfer control on the page (docs/TRANSFERS.md): the sender's
// per-recipient rows (name, progress, path in plain words, state), cancel
// and retry on both sides, and accept/decline of large files with a
// storage check first. The logic lives in sender.js and receiver.js; this
// module is their user interface and the receiving policy (a setting kept in
// localStorage).
import { Path } from './protocol.js';

export const ACCEPT_KEY = 'cloakroom.acceptAboveMiB';
export const DEFAULT_ACCEPT_MIB = 50;
const MIB = 1 << 20;
const ACTIVE = ['connecting', 'asking', 'sending', 'relay'];

/** Files larger than this many bytes wait for the user's Accept. */
export function acceptAbove() {
  let raw = null;
  try { raw = localStorage.getItem(ACCEPT_KEY); } catch { /* storage blocked: the default */ }
  const v = raw === null || raw === '' ? NaN : Number(raw);
  return (Number.isFinite(v) && v >= 0 ? v : DEFAULT_ACCEPT_MIB) * MIB;
}

/** Whether this device has room for size bytes (navigator.storage.estimate;
 * unknown counts as room). */
export async function storageCheck(size, fmt) {
  let est = null;
  try { est = await navigator.storage?.estimate?.(); } catch { est = null; }
  if (!est || !Number.isFinite(est.quota) || !Number.isFinite(est.usage)) return { ok: true, message: '' };
  const free = Math.max(0, est.quota - est.usage);
  if (free >= size) return { ok: true, message: '' };
  return { ok: false, message: `Not enough space on this device: this file needs ${fmt(size)}, and the browser lets this page use only ${fmt(free)} more. Free some space and try again.` };
}

/** The room's receiving policy and the settings field. h: {formatBytes}. */
export function setupControl(room, h) {
  room.receiver.policy = {
    needsAccept: (man) => man.size > acceptAbove(),
    storageCheck: (size) => storageCheck(size, h.formatBytes),
  };
  const input = document.getElementById('accept-above');
  if (input && !input.dataset.bound) {
    input.dataset.bound = '1';
    input.value = String(acceptAbove() / MIB);
    input.addEventListener('change', () => {
      const v = Number(input.value);
      if (input.value === '' || !Number.isFinite(v) || v < 0) { input.value = String(acceptAbove() / MIB); return; }
      try { localStorage.setItem(ACCEPT_KEY, String(v)); } catch { /* not kept */ }
    });
  }
}

/** A path as users read it. */
export function pathLabel(path) {
  if (path === Path.DIRECT) return 'Direct connection';
  if (/^TURN/.test(path || '')) return 'Via relay server';
  if (path === Path.RELAY) return 'Via the room server';
  return '';
}

const pct = (bytes, size) => `${Math.floor(size > 0 ? Math.min(1, bytes / size) * 100 : 0)} %`;

/** One recipient's state in words. */
function rowText(r, t, name) {
  switch (r.state) {
    case 'connecting': return 'Connecting…';
    case 'asking': return 'Waiting for them to accept';
    case 'relay': return 'Switching to the room server…';
    case 'sending': return `Sending · ${pct(r.bytes, t.size)}`;
    case 'delivered': return 'Delivered';
    case 'left': return 'Left before it finished';
    case 'declined': return 'Declined';
    case 'cancelled': return r.by === 'you' || !r.by ? 'Cancelled' : `Cancelled by ${name(r.by)}`;
    case 'lost': return `Failed: ${r.error || 'could not deliver it'}`;
  }
  return r.state;
}

/** The card's status line for the states this module adds, or null (app.js
 * says the rest). */
export function controlStatus(t, h) {
  const rs = [...t.recipients.values()];
  if (t.direction === 'send') {
    const speed = t.speed > 0 && t.size >= 1e6 ? ` · ${h.formatBytes(Math.round(t.speed))}/s` : '';
    switch (t.state) {
      case 'sending': {
        if (!rs.length || rs.every((r) => r.state === 'connecting')) return 'Connecting…';
        const n = rs.filter((r) => ACTIVE.includes(r.state)).length;
        return `Sending to ${n} ${n === 1 ? 'member' : 'members'} · ${pct(t.bytes, t.size)}${speed}`;
      }
      case 'done': {
        const secs = ((t.finished - t.started) / 1000).toFixed(1);
        const got = rs.filter((r) => r.state === 'delivered').length;
        return `Delivered to ${got} of ${rs.length} · ${secs} s${speed}`;
      }
      case 'cancelled': return rs.length && rs.every((r) => r.state === 'cancelled' && r.by === 'you') || !rs.length ? 'Cancelled' : 'Nobody received it';
      case 'failed': return `Not delivered: ${t.error}`;
    }
    return null;
  }
  switch (t.state) {
    case 'offered': return `${h.memberName(t.peer)} wants to send you ${t.name} (${h.formatBytes(t.size)})`;
    case 'declined': return 'You declined it';
    case 'cancelled': return t.error || 'Cancelled';
    case 'done': {
      const speed = t.speed > 0 && t.size >= 1e6 ? ` · ${h.formatBytes(Math.round(t.speed))}/s` : '';
      const p = pathLabel(t.path);
      return `Received${p ? ` · ${p}` : ''} · ${((t.finished - t.started) / 1000).toFixed(1)} s${speed}`;
    }
    case 'receiving': {
      const speed = t.speed > 0 && t.size >= 1e6 ? ` · ${h.formatBytes(Math.round(t.speed))}/s` : '';
      const p = pathLabel(t.path);
      return `Receiving · ${pct(t.bytes, t.size)}${speed}${p ? ` · ${p}` : ''}`;
    }
  }
  return null;
}

/** What decides whether the card must be drawn again (row states). */
export function controlKey(t) {
  return [...t.recipients.values()].map((r) => r.state).join(',') + '|' + (t.refusal || '');
}

/** Draws the card's control part: the sender's recipient rows and buttons,
 * the receiver's Accept/Decline, Cancel and Retry. v: the card's view
 * (li, status); h: {el, memberName, formatBytes, room}. */
export function renderControl(v, t, h) {
  const bubble = v.li.querySelector('.bubble');
  if (!v.ctl) {
    v.ctl = h.el('div', { class: 'xfer-control' });
    v.refusal = h.el('p', { class: 'xfer-refusal', role: 'alert', hidden: '' });
    v.buttons = h.el('div', { class: 'actions xfer-actions' });
    bubble.insertBefore(v.ctl, v.status.nextSibling);
    v.ctl.append(v.refusal, v.buttons);
    if (t.direction === 'send') {
      v.rows = h.el('ul', { class: 'recipients', 'aria-label': 'Recipients' });
      v.ctl.prepend(v.rows);
    }
  }
  if (t.direction === 'send') renderRows(v, t, h);
  v.refusal.hidden = !t.refusal;
  v.refusal.textContent = t.refusal || '';
  const key = buttonKey(t);
  if (v.buttonKey === key) return;
  v.buttonKey = key;
  const room = h.room;
  const btn = (text, cls, fn) => {
    const b = h.el('button', { type: 'button', class: `small ${cls}`, text });
    b.addEventListener('click', fn);
    return b;
  };
  const out = [];
  if (t.direction === 'send') {
    const rs = [...t.recipients.values()];
    if (['hashing', 'waiting'].includes(t.state) || rs.some((r) => ACTIVE.includes(r.state))) {
      out.push(btn('Cancel', 'xfer-cancel', () => room.sender.cancel(t.id)));
    }
  } else if (t.state === 'offered') {
    out.push(btn('Accept', 'primary xfer-accept', async (e) => {
      e.target.disabled = true;
      const ok = await room.receiver.accept(t.id);
      if (!ok) e.target.disabled = false;
    }));
    out.push(btn('Decline', 'xfer-decline', () => room.receiver.decline(t.id)));
  } else if (t.state === 'receiving') {
    out.push(btn('Cancel', 'xfer-cancel', () => room.receiver.cancel(t.id)));
  } else if ((t.state === 'failed' || t.state === 'cancelled') && !t.bySender) {
    out.push(btn('Retry', 'xfer-retry', () => room.receiver.retry(t.id)));
  }
  v.buttons.replaceChildren(...out);
  v.buttons.hidden = !out.length;
}

function buttonKey(t) {
  if (t.direction === 'send') return t.state + '|' + [...t.recipients.values()].some((r) => ACTIVE.includes(r.state));
  return `${t.state}|${!!t.bySender}`;
}

function renderRows(v, t, h) {
  const room = h.room;
  v.rowEls ??= new Map();
  for (const [m, r] of t.recipients) {
    let row = v.rowEls.get(m);
    if (!row) {
      row = { li: h.el('li', { class: 'recipient', dataset: { member: m } }) };
      row.name = h.el('span', { class: 'r-name', text: h.memberName(m) });
      row.state = h.el('span', { class: 'r-state' });
      row.path = h.el('span', { class: 'r-path muted' });
      row.bar = h.el('progress', { class: 'r-bar', max: '1', value: '0', 'aria-label': `Progress to ${h.memberName(m)}` });
      row.act = h.el('span', { class: 'r-actions' });
      row.li.append(row.name, row.state, row.path, row.bar, row.act);
      v.rowEls.set(m, row);
      v.rows.append(row.li);
    }
    row.li.dataset.state = r.state;
    row.name.textContent = h.memberName(m);
    row.state.textContent = rowText(r, t, h.memberName);
    // How it went, while it matters; a move mid-file (relay first) says both.
    const moved = r.movedFrom && r.movedFrom !== r.path ? `${pathLabel(r.movedFrom)}, then ` : '';
    row.path.textContent = ['sending', 'delivered'].includes(r.state) ? moved + (moved ? pathLabel(r.path).toLowerCase() : pathLabel(r.path)) : '';
    row.bar.value = r.state === 'delivered' ? 1 : (t.size > 0 ? Math.min(1, r.bytes / t.size) : 0);
    row.bar.hidden = !['sending', 'delivered'].includes(r.state) || r.state === 'delivered';
    const online = room.members.get(m)?.online;
    const akey = `${r.state}|${online}`;
    if (row.akey === akey) continue;
    row.akey = akey;
    const acts = [];
    if (ACTIVE.includes(r.state)) {
      const b = h.el('button', { type: 'button', class: 'link small r-cancel', text: 'Cancel', 'aria-label': `Cancel sending to ${h.memberName(m)}` });
      b.addEventListener('click', () => room.sender.cancel(t.id, m));
      acts.push(b);
    } else if (r.state !== 'delivered' && online) {
      const b = h.el('button', { type: 'button', class: 'link small r-retry', text: 'Retry', 'aria-label': `Send again to ${h.memberName(m)}` });
      b.addEventListener('click', () => room.sender.retry(t.id, m));
      acts.push(b);
    }
    row.act.replaceChildren(...acts);
  }
}
