// Saved rooms: a room kept on this device, protected by a passphrase
// (issue 14; docs/SECURITY.md "Staying in the room").
//
// A record is sealed with AES-GCM-256 under a key derived from the
// passphrase with PBKDF2-SHA-256 (PBKDF2_ITERATIONS, a random 16-byte salt
// per record); a fresh 12-byte IV per write; the AAD binds the format
// version and the record id, so records cannot be swapped. Sealed: the room
// secret, the member identity (id and P-256 key pair), the display name and
// the label. In clear, for the start page's list: the label and when the
// room was saved and last opened. Records live in IndexedDB
// (database "cloakroom", store "rooms").
//
// The crypto functions (sealRecord, openRecord, resealRecord) need only
// WebCrypto, so scripts/js-checks.mjs runs them in Node.

export const PBKDF2_ITERATIONS = 600000;
export const MIN_PASSPHRASE = 8;
export const MAX_LABEL_CHARS = 60;
const FORMAT = 1;
const DB = 'cloakroom';
const STORE = 'rooms';

const subtle = () => globalThis.crypto.subtle;
const te = new TextEncoder();
const td = new TextDecoder();

function b64u(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function unb64u(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('bad base64url');
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
const rand = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n));
const aad = (id) => te.encode(`cloakroom saved room v${FORMAT}\0${id}`);

/** The passphrase was wrong (or the record was altered): nothing changed. */
export class WrongPassphrase extends Error {
  constructor() { super('wrong passphrase'); this.name = 'WrongPassphrase'; }
}

/** The AES-GCM key of a passphrase and salt. Extractable: the tab that
 * opened or saved a room keeps it in its session, to seal a rename again
 * without asking for the passphrase (docs/SECURITY.md). */
export async function deriveKey(passphrase, salt, iterations = PBKDF2_ITERATIONS) {
  const base = await subtle().importKey('raw', te.encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveKey']);
  return subtle().deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base,
    { name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
}

/** A cleaned label: no control characters, at most MAX_LABEL_CHARS. */
export function cleanLabel(s) {
  const t = String(s ?? '').replace(/[\p{Cc}\u200B-\u200F\u202A-\u202E\u2060-\u206F\uFEFF\u2028\u2029]/gu, '').replace(/\s+/gu, ' ').trim();
  return [...t].slice(0, MAX_LABEL_CHARS).join('').trim();
}

async function seal(key, id, payload) {
  const iv = rand(12);
  const ct = new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: aad(id) }, key, te.encode(JSON.stringify(payload))));
  return { iv: b64u(iv), data: b64u(ct) };
}

/** Seals payload ({secret, member, key: {d, pub}, name, label}) under
 * passphrase into a new record; resolves {record, key} (key: to reseal
 * later without asking for the passphrase again). */
export async function sealRecord(payload, passphrase, { iterations = PBKDF2_ITERATIONS, now = Date.now() } = {}) {
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE) throw new Error(`a passphrase needs at least ${MIN_PASSPHRASE} characters`);
  const id = Array.from(rand(16), (b) => b.toString(16).padStart(2, '0')).join('');
  const salt = rand(16);
  const key = await deriveKey(passphrase, salt, iterations);
  const label = cleanLabel(payload.label) || 'Saved room';
  const record = {
    id, v: FORMAT, label, saved: now, opened: now,
    kdf: { name: 'PBKDF2', hash: 'SHA-256', iterations }, salt: b64u(salt),
    ...(await seal(key, id, { ...payload, label })),
  };
  return { record, key };
}

/** Opens a record with passphrase; resolves {payload, key}; a wrong
 * passphrase (or an altered record) rejects with WrongPassphrase. */
export async function openRecord(record, passphrase) {
  if (!record || record.v !== FORMAT || record.kdf?.name !== 'PBKDF2' || record.kdf?.hash !== 'SHA-256') throw new Error('unknown saved-room format');
  const iterations = record.kdf.iterations;
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new Error('unknown saved-room format');
  const key = await deriveKey(String(passphrase), unb64u(record.salt), iterations);
  return { payload: await openWith(record, key), key };
}

/** Opens a record with its key (kept from openRecord or sealRecord). */
export async function openWith(record, key) {
  let pt;
  try {
    pt = await subtle().decrypt({ name: 'AES-GCM', iv: unb64u(record.iv), additionalData: aad(record.id) }, key, unb64u(record.data));
  } catch {
    throw new WrongPassphrase();
  }
  return JSON.parse(td.decode(pt));
}

/** The record with payload sealed again under the same key (a fresh IV),
 * e.g. after a rename; the clear label follows the payload's. */
export async function resealRecord(record, key, payload, { now = Date.now() } = {}) {
  const label = cleanLabel(payload.label) || record.label;
  return { ...record, label, opened: now, ...(await seal(key, record.id, { ...payload, label })) };
}

// ---- IndexedDB ---------------------------------------------------------------

let dbp = null;
function db() {
  dbp ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  dbp.catch(() => { dbp = null; });
  return dbp;
}

async function tx(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('aborted'));
  });
}

/** Every saved record, last opened first. */
export async function listSaved() {
  const all = await tx('readonly', (s) => s.getAll());
  return (all || []).sort((a, b) => b.opened - a.opened);
}
export const getSaved = (id) => tx('readonly', (s) => s.get(id));
export const putSaved = (record) => tx('readwrite', (s) => s.put(record));
export const deleteSaved = (id) => tx('readwrite', (s) => s.delete(id));

/** Whether this browser can keep saved rooms. */
export const canSave = () => typeof indexedDB !== 'undefined' && !!globalThis.crypto?.subtle;
