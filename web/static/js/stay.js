// Staying in the room (issue 14): this tab's session in sessionStorage, so
// a reload, Back or an evicted tab comes back to the same room as the same
// member with its recent chat; and the member identity (id and P-256 key
// pair) in a form that can be kept (here and in a saved room, saved.js).
//
// What sessionStorage holds (docs/SECURITY.md "Staying in the room"): the
// room secret, the member's private key, its chosen name, the id and AES
// key of its saved room if any, the highest pairwise signal counter used,
// and the last chat envelopes as sealed.
// It is per tab, cleared when the tab closes, and not encrypted.
import * as C from './crypto.js';
import { HISTORY_LENGTH } from './protocol.js';

const KEY = 'cloakroom.room';
const FORMAT = 1;

/** A new member identity that can be kept: {member, d, pub} (base64url
 * of the P-256 private scalar and the 65-byte public key). */
export async function newKeptIdentity() {
  const kp = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const jwk = await crypto.subtle.exportKey('jwk', kp.privateKey);
  const pub = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey));
  return { member: C.newUUID(), d: jwk.d, pub: C.b64u(pub) };
}

/** The Room identity ({priv, pub}) of a kept one. */
export async function roomIdentity(kept) {
  return C.importIdentity(C.unb64u(kept.d), C.unb64u(kept.pub));
}

/** Checks the form of a kept identity (from storage). */
export function validKept(k) {
  return !!k && C.validUUID(k.member) && typeof k.d === 'string' && /^[A-Za-z0-9_-]{43}$/.test(k.d) &&
    typeof k.pub === 'string' && /^[A-Za-z0-9_-]{87}$/.test(k.pub);
}

function storage() {
  try { return globalThis.sessionStorage ?? null; } catch { return null; } // disabled storage throws
}

/** This tab's session, or null: {secret (Uint8Array), ident (kept), joined,
 * name, saved (its saved room's id), savedKey (that record's AES key, raw
 * base64url), feed: [{from, env, ts}]}. */
export function loadSession() {
  const st = storage();
  if (!st) return null;
  try {
    const s = JSON.parse(st.getItem(KEY) || 'null');
    if (!s || s.v !== FORMAT || !validKept(s.ident)) return null;
    const secret = C.unb64u(s.secret);
    if (secret.length !== C.SECRET_LEN) return null;
    return {
      secret, ident: s.ident, joined: Number(s.joined) || Date.now(), name: typeof s.name === 'string' ? s.name : '',
      saved: typeof s.saved === 'string' ? s.saved : '', savedKey: typeof s.savedKey === 'string' ? s.savedKey : '', feed: Array.isArray(s.feed) ? s.feed : [],
    };
  } catch {
    return null;
  }
}

/** Writes the session (feed: the room's last chat envelopes). */
export function saveSession(s) {
  const st = storage();
  if (!st) return;
  const rec = {
    v: FORMAT, secret: C.b64u(s.secret), ident: s.ident, joined: s.joined, name: s.name || '', saved: s.saved || '', savedKey: s.savedKey || '',
    feed: (s.feed || []).slice(-HISTORY_LENGTH).map(({ from, env, ts }) => ({ from, env, ts })),
  };
  try {
    st.setItem(KEY, JSON.stringify(rec));
  } catch {
    // Over the quota: keep the room without its chat.
    try { st.setItem(KEY, JSON.stringify({ ...rec, feed: [] })); } catch { /* nothing kept */ }
  }
}

export function clearSession() {
  try { storage()?.removeItem(KEY); storage()?.removeItem(CTR); } catch { /* nothing to clear */ }
}

// The highest pairwise signal counter this tab's identity used (a decimal
// string, under its own key: written on every signal sealed, so small).
const CTR = 'cloakroom.ctr';
let ctrHigh = 0n;

/** Notes a signal counter used (room.js onCounter). */
export function keepCounter(c) {
  if (c <= ctrHigh) return;
  ctrHigh = c;
  try { storage()?.setItem(CTR, String(c)); } catch { /* the clock floor remains */ }
}

/** The highest counter kept (0n if none). */
export function keptCounter() {
  try {
    const s = storage()?.getItem(CTR);
    return s && /^[0-9]{1,20}$/.test(s) ? BigInt(s) : 0n;
  } catch {
    return 0n;
  }
}

/** Starts the tab's high-water mark again (a new identity). */
export function resetCounter(c = 0n) {
  ctrHigh = c;
  try { storage()?.setItem(CTR, String(c)); } catch { /* nothing kept */ }
}

/** Whether the session is of this room secret. */
export function sameSecret(s, secret) {
  return !!s && s.secret.length === secret.length && s.secret.every((b, i) => b === secret[i]);
}
