// Cloakroom cryptography for the browser: the exact port of internal/crypto
// (see internal/crypto/format.go for every byte layout) on WebCrypto only.
// It is checked against internal/crypto/testdata/vectors.json in Chromium by
// webtest/vectors.mjs, so a browser and the Go CLI always interoperate.
//
// Byte strings are Uint8Array; member and file ids are lower-case UUID
// strings, written into AAD/info/MAC inputs as lp(UTF-8 bytes).

const subtle = globalThis.crypto?.subtle;

export const VERSION = 1;
export const SECRET_LEN = 16;
export const MAX_CHUNK_SIZE = 64512; // protocol.ChunkSize

const L = {
  roomSalt: 'cloakroom/v1',
  roomID: 'cloakroom/v1 room-id',
  verifier: 'cloakroom/v1 verifier',
  announce: 'cloakroom/v1 announce',
  content: 'cloakroom/v1 content',
  pairSalt: 'cloakroom/v1 pair-salt',
  pair: 'cloakroom/v1 pair',
  signal: 'cloakroom/v1 signal',
  confirm: 'cloakroom/v1 confirm',
  envelope: 'cloakroom/v1 envelope',
  chunk: 'cloakroom/v1 chunk',
};
const MAX_FIELD = 0xffff;
const GCM_TAG = 16;
const ENVELOPE_HEADER = 1 + 16 + 12 + 32 + GCM_TAG; // version, id, nonce, wrapped key

// ---- errors ---------------------------------------------------------------

/** Invite parse error; code is 'typo' (check character) or 'bad_secret'. */
export class InviteError extends Error {
  constructor(code, message) { super(message); this.name = 'InviteError'; this.code = code; }
}
/** Decryption failed: wrong key or tampered data. */
export class OpenError extends Error {
  constructor(message = 'decryption failed: wrong key or tampered data') { super(message); this.name = 'OpenError'; }
}
/** A signal replayed or out of order. */
export class ReplayError extends Error {
  constructor() { super('signal replayed or out of order'); this.name = 'ReplayError'; }
}

export function hasWebCrypto() { return !!subtle; }

// ---- bytes ----------------------------------------------------------------

const te = new TextEncoder();
const td = new TextDecoder(); // non-fatal: invalid UTF-8 becomes U+FFFD, as in Go's json

export const utf8 = (s) => te.encode(s);
export const fromUTF8 = (b) => td.decode(b);

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

const fits = (b) => b.length <= MAX_FIELD;
/** lp(x): uint16 BE length then the bytes (strings as UTF-8). */
function lp(x) {
  const b = typeof x === 'string' ? te.encode(x) : x;
  if (!fits(b)) throw new RangeError('length-prefixed field over 65535 bytes');
  const out = new Uint8Array(2 + b.length);
  out[0] = b.length >> 8; out[1] = b.length & 0xff;
  out.set(b, 2);
  return out;
}
const fitsLP = (...xs) => xs.every((x) => (typeof x === 'string' ? te.encode(x) : x).length <= MAX_FIELD);
const u8 = (n) => Uint8Array.of(n & 0xff);
export function u32(n) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; }
export function u64(n) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n)); return b; }

export function toHex(b) {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}
export function fromHex(s) {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new TypeError('not hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64V = (() => { const t = new Int8Array(128).fill(-1); for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i; return t; })();

/** base64url without padding (the wire form of every byte field). */
export function b64u(b) {
  let s = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (b.length - i === 1) {
    const n = b[i] << 16;
    s += B64[n >> 18] + B64[(n >> 12) & 63];
  } else if (b.length - i === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63];
  }
  return s;
}

/** Strict base64url decoding (no padding, zero trailing bits), like Go's
 * base64.RawURLEncoding.Strict(). Throws TypeError on bad input. */
export function unb64u(s) {
  if (typeof s !== 'string' || s.length % 4 === 1) throw new TypeError('bad base64url');
  const out = new Uint8Array(Math.floor(s.length * 3 / 4));
  let o = 0, acc = 0, bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64V[c] : -1;
    if (v < 0) throw new TypeError('bad base64url');
    acc = (acc << 6) | v; bits += 6;
    if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 0xff; }
    acc &= (1 << bits) - 1;
  }
  if (acc !== 0) throw new TypeError('bad base64url (trailing bits)');
  return out;
}

function ctEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Bytewise (UTF-8) comparison of two strings, as Go's string < . */
function lessUTF8(a, b) {
  const x = te.encode(a), y = te.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] < y[i];
  return x.length < y.length;
}

// ---- UUIDs ----------------------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const validUUID = (s) => typeof s === 'string' && UUID_RE.test(s);
export function uuidBytes(s) {
  if (!validUUID(s)) throw new TypeError('not a lower-case UUID');
  return fromHex(s.replaceAll('-', ''));
}
export function uuidString(b) {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
export function newUUID() { return crypto.randomUUID(); }

export function randomBytes(n) { return crypto.getRandomValues(new Uint8Array(n)); }

// ---- primitives -----------------------------------------------------------

async function hkdf(ikm, salt, info, n) {
  const k = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, k, n * 8));
}
const hmacKey = (raw, uses) => subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, uses);
const gcmKey = (raw) => subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
async function gcmSeal(key, iv, pt, aad) {
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, pt));
}
async function gcmOpen(key, iv, ct, aad) {
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, ct));
  } catch {
    throw new OpenError();
  }
}
const NO_SALT = new Uint8Array(0);

/** SHA-256 of bytes in one go (WebCrypto). */
export async function sha256(b) { return new Uint8Array(await subtle.digest('SHA-256', b)); }

// ---- room secret and its encodings -----------------------------------------

export function newSecret() { return randomBytes(SECRET_LEN); }
export function fragment(secret) { return b64u(secret); }
export function link(base, secret) { return base.replace(/\/+$/, '') + '/#' + fragment(secret); }

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const MINI_DATA = 26, MINI_LEN = 27, MINI_PAD_BITS = 2;
const MINI_FORMAT = 'a mini code of 27 characters like XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX';
const CROCK_V = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 32; i++) t[CROCKFORD.charCodeAt(i)] = i;
  t['O'.charCodeAt(0)] = 0; t['I'.charCodeAt(0)] = 1; t['L'.charCodeAt(0)] = 1;
  return t;
})();

function luhn32(vals) {
  let factor = 2, sum = 0;
  for (let i = vals.length - 1; i >= 0; i--) {
    const a = factor * vals[i];
    sum += Math.floor(a / 32) + (a % 32);
    factor = 3 - factor;
  }
  return (32 - (sum % 32)) % 32;
}

const bitAt = (b, i) => (i >> 3 >= b.length ? 0 : (b[i >> 3] >> (7 - (i & 7))) & 1);

/** The grouped Crockford base32 form with a Luhn mod 32 check character. */
export function miniCode(secret) {
  const vals = [];
  for (let i = 0; i < MINI_DATA; i++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = (v << 1) | bitAt(secret, 5 * i + j);
    vals.push(v);
  }
  vals.push(luhn32(vals));
  let s = '';
  vals.forEach((v, i) => { if (i > 0 && i % 4 === 0) s += '-'; s += CROCKFORD[v]; });
  return s;
}

// unicode.IsSpace: JavaScript's \s without U+FEFF, plus U+0085.
const isSpace = (ch) => ch !== '\ufeff' && /^[\s\u0085]$/u.test(ch);

function parseMiniCode(input) {
  const vals = [];
  let n = 0;
  for (const ch of input) {
    if (ch === '-' || isSpace(ch)) continue;
    n++;
    // ASCII only, checked before upper-casing (as Go does): 'ı'.toUpperCase() is 'I'.
    const v = ch.length === 1 && ch.charCodeAt(0) < 128 ? CROCK_V[ch.toUpperCase().charCodeAt(0)] : -1;
    if (v < 0) {
      // Never echo the character: the input is (almost) a secret.
      throw new InviteError('bad_secret', `character ${n} is not a mini code character (${MINI_FORMAT}; letters I, L, O, U are not used)`);
    }
    vals.push(v);
  }
  if (vals.length !== MINI_LEN) {
    throw new InviteError('bad_secret', `got ${vals.length} characters; expected a room link, a 22-character fragment, or ${MINI_FORMAT}`);
  }
  if (luhn32(vals.slice(0, MINI_DATA)) !== vals[MINI_DATA]) {
    throw new InviteError('typo', `the mini code has a typo (check character does not match); re-check each character (${MINI_FORMAT})`);
  }
  if (vals[MINI_DATA - 1] & ((1 << MINI_PAD_BITS) - 1)) {
    throw new InviteError('typo', 'the mini code has a typo: the 26th character cannot occur in a valid code; re-check it');
  }
  const s = new Uint8Array(SECRET_LEN);
  for (let i = 0; i < SECRET_LEN * 8; i++) {
    if ((vals[Math.floor(i / 5)] >> (4 - (i % 5))) & 1) s[i >> 3] |= 1 << (7 - (i & 7));
  }
  return s;
}

function parseSecretText(t) {
  t = t.trim();
  if (t.length === 22) {
    try {
      const b = unb64u(t);
      if (b.length === SECRET_LEN) return b;
    } catch { /* not a fragment: try a mini code */ }
  }
  return parseMiniCode(t);
}

function parseLink(input) {
  const hash = input.indexOf('#');
  let u;
  try {
    u = new URL(hash < 0 ? input : input.slice(0, hash));
  } catch {
    throw new InviteError('bad_secret', 'link is not a valid URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new InviteError('bad_secret', `link must start with https:// (or http://), not ${u.protocol.slice(0, -1)}://`);
  }
  if (!u.hostname) throw new InviteError('bad_secret', 'link has no host');
  let frag = hash < 0 ? '' : input.slice(hash + 1);
  try { frag = decodeURIComponent(frag); } catch { /* keep it as it is; it will fail below */ }
  if (frag === '') throw new InviteError('bad_secret', "link has no room secret after '#' (was the link cut short?)");
  try {
    return { server: `${u.protocol}//${u.host}`, secret: parseSecretText(frag) };
  } catch (e) {
    if (e instanceof InviteError) e.message = 'link fragment: ' + e.message;
    throw e;
  }
}

/** parseInvite accepts a full link ("https://host/#FRAG"), a bare fragment
 * (with or without '#') or a mini code (any case, any spaces/dashes, O->0,
 * I/L->1). Returns {server ("" when the input holds none), secret}. Throws
 * InviteError with code 'typo' or 'bad_secret'; messages never quote the input. */
export function parseInvite(input) {
  const s = String(input ?? '').trim();
  if (s === '') {
    throw new InviteError('bad_secret', 'empty input; expected a room link (https://host/#…), its 22-character fragment or a 27-character mini code');
  }
  if (s.includes('://')) return parseLink(s);
  return { server: '', secret: parseSecretText(s.startsWith('#') ? s.slice(1) : s) };
}

// ---- room keys ------------------------------------------------------------

/** RoomKeys: everything derived from the secret. Only roomID and verifier are
 * ever sent to the server. */
export class RoomKeys {
  /** @private use deriveRoom */
  constructor(raw, announceKey, contentKey) {
    Object.assign(this, raw); // roomID, verifier, announceKey (raw), contentKey (raw), pairSalt
    this._announce = announceKey;
    this._content = contentKey;
    this.roomIDString = b64u(raw.roomID);
  }

  _announceInput(member, pub) {
    if (!fitsLP(member, pub)) return null;
    return concat(utf8(L.announce), this.roomID, lp(member), lp(pub));
  }

  /** The MAC of a member announcement, or null when a field is over 65535 bytes. */
  async announce(member, pub) {
    const input = this._announceInput(member, pub);
    if (!input) return null;
    return new Uint8Array(await subtle.sign('HMAC', this._announce, input));
  }

  /** Checks an announcement MAC (constant time); true when it verifies. */
  async verifyAnnounce(member, pub, mac) {
    const input = this._announceInput(member, pub);
    if (!input || !(mac instanceof Uint8Array) || mac.length !== 32) return false;
    return subtle.verify('HMAC', this._announce, mac, input);
  }

  _envelopeAAD(meta, id) {
    const file = meta.file ?? '', chunks = meta.chunks ?? 0;
    if (!fitsLP(meta.sender, file)) return null;
    return concat(utf8(L.envelope), u8(VERSION), this.roomID, lp(meta.sender), id, lp(file), u32(chunks));
  }

  /** Seals plaintext under a fresh message key wrapped under the content key.
   * meta = {sender, file = '', chunks = 0}. Returns {id, sealed}. `fixed`
   * ({id, msgKey, nonce}) is for the test vectors only. */
  async sealEnvelope(meta, plaintext, fixed) {
    const id = fixed?.id ?? randomBytes(16);
    const msgKey = fixed?.msgKey ?? randomBytes(32);
    const nonce = fixed?.nonce ?? randomBytes(12);
    const aad = this._envelopeAAD(meta, id);
    if (!aad) throw new RangeError('seal envelope: sender or file id over 65535 bytes');
    const wrapped = await gcmSeal(this._content, nonce, msgKey, aad);
    const body = await gcmSeal(await gcmKey(msgKey), new Uint8Array(12), plaintext, aad);
    msgKey.fill(0);
    return { id, sealed: concat(u8(VERSION), id, nonce, wrapped, body) };
  }

  /** Opens an envelope whose routing info is meta; throws OpenError. */
  async openEnvelope(meta, sealed) {
    if (!(sealed instanceof Uint8Array) || sealed.length < ENVELOPE_HEADER + GCM_TAG) throw new OpenError('envelope too short');
    if (sealed[0] !== VERSION) throw new OpenError(`envelope version ${sealed[0]}, want ${VERSION}`);
    const id = sealed.slice(1, 17);
    const nonce = sealed.subarray(17, 29);
    const wrapped = sealed.subarray(29, ENVELOPE_HEADER);
    const aad = this._envelopeAAD(meta, id);
    if (!aad) throw new OpenError();
    const msgKey = await gcmOpen(this._content, nonce, wrapped, aad);
    const k = await gcmKey(msgKey);
    msgKey.fill(0);
    const plaintext = await gcmOpen(k, new Uint8Array(12), sealed.subarray(ENVELOPE_HEADER), aad);
    return { id, plaintext };
  }

  /** Seals a manifest (validated first) as an envelope from sender. */
  async sealManifest(sender, m, fixed) {
    const err = validateManifest(m);
    if (err) throw new Error('seal manifest: ' + err);
    const { sealed } = await this.sealEnvelope({ sender, file: m.file, chunks: m.chunks }, manifestPlaintext(m), fixed);
    return sealed;
  }

  /** Opens and validates a manifest; meta = {sender, file, chunks}. */
  async openManifest(meta, sealed) {
    if (!meta.file) throw new Error('open manifest: envelope has no file id (not a manifest)');
    const { plaintext } = await this.openEnvelope(meta, sealed);
    const m = parseManifest(plaintext);
    if (m.file !== meta.file) throw new Error("open manifest: file id differs from the envelope's");
    if (m.chunks !== meta.chunks) throw new Error(`open manifest: ${m.chunks} chunks, envelope says ${meta.chunks}`);
    const err = validateManifest(m);
    if (err) throw new Error('open manifest: ' + err);
    return m;
  }
}

/** Derives every room key from a 16-byte secret. */
export async function deriveRoom(secret) {
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_LEN) throw new TypeError('secret must be 16 bytes');
  const salt = utf8(L.roomSalt);
  const [roomID, verifier, announceKey, contentKey, pairSalt] = await Promise.all([
    hkdf(secret, salt, utf8(L.roomID), 16),
    hkdf(secret, salt, utf8(L.verifier), 32),
    hkdf(secret, salt, utf8(L.announce), 32),
    hkdf(secret, salt, utf8(L.content), 32),
    hkdf(secret, salt, utf8(L.pairSalt), 32),
  ]);
  return new RoomKeys({ roomID, verifier, announceKey, contentKey, pairSalt },
    await hmacKey(announceKey, ['sign', 'verify']), await gcmKey(contentKey));
}

// ---- manifests ------------------------------------------------------------

const MANIFEST_FIELDS = ['file', 'name', 'type', 'size', 'chunkSize', 'chunks', 'sha256', 'key'];

/** The manifest plaintext: JSON with "kind":"file" then the fields in Go's order. */
export function manifestPlaintext(m) {
  const o = { kind: 'file' };
  for (const k of MANIFEST_FIELDS) o[k] = m[k] ?? (k === 'type' ? '' : m[k]);
  return utf8(JSON.stringify(o));
}

function parseManifest(pt) {
  let raw;
  try { raw = JSON.parse(fromUTF8(pt)); } catch (e) { throw new Error('open manifest: manifest is not a JSON object'); }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('open manifest: manifest is not a JSON object');
  const has = (k) => Object.prototype.hasOwnProperty.call(raw, k);
  const m = {};
  for (const k of ['kind', ...MANIFEST_FIELDS]) {
    if (!has(k)) {
      if (k === 'type') { m.type = ''; continue; }
      throw new Error(`open manifest: manifest has no "${k}"`);
    }
    const v = raw[k];
    if (v === null) throw new Error(`open manifest: manifest "${k}" is null`);
    const numeric = k === 'size' || k === 'chunkSize' || k === 'chunks';
    if (numeric ? !Number.isSafeInteger(v) : typeof v !== 'string') throw new Error(`open manifest: manifest "${k}" has the wrong type`);
    m[k] = v;
  }
  if (m.kind !== 'file') throw new Error('open manifest: envelope kind is not "file"');
  if (m.chunks < 0 || m.chunks > 0xffffffff) throw new Error('open manifest: chunk count out of range');
  delete m.kind;
  return m;
}

/** Number of chunks of a file (at least 1); 0 for invalid input. */
export function chunkCount(size, chunkSize) {
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(chunkSize) || size < 0 || chunkSize < 1) return 0;
  const n = size === 0 ? 1 : Math.floor((size - 1) / chunkSize) + 1;
  return n > 0xffffffff ? 0 : n;
}

/** Returns an error string, or '' when the manifest's fields are valid. */
export function validateManifest(m) {
  if (!m || typeof m !== 'object') return 'no manifest';
  if (!validUUID(m.file)) return 'file id is not a lower-case UUID';
  if (!Number.isSafeInteger(m.size) || m.size < 0) return `bad size ${m.size}`;
  if (!Number.isSafeInteger(m.chunkSize) || m.chunkSize < 1 || m.chunkSize > MAX_CHUNK_SIZE) return `chunk size ${m.chunkSize} not in 1..${MAX_CHUNK_SIZE}`;
  if (!Number.isSafeInteger(m.chunks) || m.chunks === 0 || m.chunks !== chunkCount(m.size, m.chunkSize)) return `${m.chunks} chunks do not fit size ${m.size} with chunk size ${m.chunkSize}`;
  if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) return 'sha256 is not 64 lower-case hex characters';
  let key = null;
  try { key = unb64u(m.key); } catch { /* below */ }
  if (!key || key.length !== 32) return 'key is not 32 bytes of base64url';
  if (m.type !== undefined && typeof m.type !== 'string') return 'type is not a string';
  const n = m.name;
  if (typeof n !== 'string' || n === '') return 'empty file name';
  if (utf8(n).length > 255) return 'file name over 255 bytes';
  if (n === '.' || n === '..') return 'file name is . or ..';
  if (/[/\\\0]/.test(n)) return "file name contains '/', '\\' or NUL";
  return '';
}

// ---- identities and pairwise keys -----------------------------------------

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

/** A fresh per-session ECDH P-256 identity: {priv: CryptoKey, pub: 65 bytes}. */
export async function newIdentity() {
  const kp = await subtle.generateKey(ECDH, false, ['deriveBits']);
  const pub = new Uint8Array(await subtle.exportKey('raw', kp.publicKey));
  return { priv: kp.privateKey, pub };
}

/** An identity from a known private scalar (test vectors). */
export async function importIdentity(scalar, pub) {
  const priv = await subtle.importKey('jwk', {
    kty: 'EC', crv: 'P-256', d: b64u(scalar), x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33, 65)),
  }, ECDH, false, ['deriveBits']);
  return { priv, pub: Uint8Array.from(pub) };
}

/** The pairwise channel between this member (self) and a peer: directional
 * signal keys with counter nonces, and key confirmation. Keep exactly one
 * Pair per (own identity, peer id, peer key) for the whole session. */
export class Pair {
  /** @private use newPair */
  constructor(st) { Object.assign(this, st); this.sendCtr = 0n; this.recvMax = 0n; this._recvQueue = Promise.resolve(); }

  _nonceAAD(from, to, c) {
    return {
      nonce: concat(new Uint8Array(4), u64(c)),
      aad: concat(utf8(L.signal), u8(VERSION), this.roomID, lp(from), lp(to), u64(c)),
    };
  }

  /** Seals a signal to the peer with the next counter: u64(c) ‖ ciphertext+tag. */
  async sealSignal(plaintext) {
    if (this.sendCtr === 0xffffffffffffffffn) throw new Error('seal signal: counter exhausted');
    const c = ++this.sendCtr;
    const { nonce, aad } = this._nonceAAD(this.self, this.peer, c);
    return concat(u64(c), await gcmSeal(this._send, nonce, plaintext, aad));
  }

  /** Opens a signal from the peer; counters must strictly increase
   * (ReplayError), tampering gives OpenError. Calls are serialized. */
  openSignal(sealed) {
    const run = this._recvQueue.then(() => this._open(sealed));
    this._recvQueue = run.catch(() => {});
    return run;
  }

  async _open(sealed) {
    if (!(sealed instanceof Uint8Array) || sealed.length < 8 + GCM_TAG) throw new OpenError('signal too short');
    const c = new DataView(sealed.buffer, sealed.byteOffset, 8).getBigUint64(0);
    if (c <= this.recvMax) throw new ReplayError();
    const { nonce, aad } = this._nonceAAD(this.peer, this.self, c);
    const pt = await gcmOpen(this._recv, nonce, sealed.subarray(8), aad);
    this.recvMax = c;
    return pt;
  }

  _confirmInput(offererFP, answererFP, fromOfferer, author, recipient) {
    if (!fitsLP(offererFP, answererFP, author, recipient)) return null;
    return concat(utf8(L.confirm), lp(offererFP), lp(answererFP), u8(fromOfferer ? 1 : 0), lp(author), lp(recipient));
  }

  /** The key-confirmation tag this side sends (fromOfferer: this side is the offerer). */
  async confirm(offererFP, answererFP, fromOfferer) {
    const input = this._confirmInput(offererFP, answererFP, fromOfferer, this.self, this.peer);
    if (!input) return null;
    return new Uint8Array(await subtle.sign('HMAC', this._confirm, input));
  }

  /** Checks the peer's tag (fromOfferer: the peer is the offerer); true when it verifies. */
  async verifyConfirm(offererFP, answererFP, fromOfferer, tag) {
    const input = this._confirmInput(offererFP, answererFP, fromOfferer, this.peer, this.self);
    if (!input || !(tag instanceof Uint8Array) || tag.length !== 32) return false;
    return subtle.verify('HMAC', this._confirm, tag, input);
  }
}

/** Computes the pairwise key HKDF(ECDH(self, peer), salt = PairSalt, info =
 * sorted (id, pub) of both members) and the directional keys. */
export async function newPair(keys, self, ident, peer, peerPub) {
  if (!keys || !ident?.priv) throw new Error('new pair: missing room keys or identity');
  if (!self || !peer) throw new Error('new pair: empty member id');
  if (self === peer) throw new Error('new pair: peer is this member');
  if (!fitsLP(self, peer)) throw new Error('new pair: member id too long');
  if (!(peerPub instanceof Uint8Array) || peerPub.length !== 65 || peerPub[0] !== 4) throw new Error('new pair: invalid peer public key');
  if (ctEqual(peerPub, ident.pub)) throw new Error("new pair: peer announces this member's public key");
  let pk;
  try {
    pk = await subtle.importKey('raw', peerPub, ECDH, false, []);
  } catch {
    throw new Error('new pair: invalid peer public key');
  }
  const shared = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: pk }, ident.priv, 256));
  let [idLo, pubLo, idHi, pubHi] = [self, ident.pub, peer, peerPub];
  if (lessUTF8(idHi, idLo)) [idLo, pubLo, idHi, pubHi] = [idHi, pubHi, idLo, pubLo];
  const info = concat(utf8(L.pair), keys.roomID, lp(idLo), lp(pubLo), lp(idHi), lp(pubHi));
  const pairKey = await hkdf(shared, keys.pairSalt, info, 32);
  shared.fill(0);
  const sendKey = await hkdf(pairKey, NO_SALT, concat(utf8(L.signal), lp(self), lp(peer)), 32);
  const recvKey = await hkdf(pairKey, NO_SALT, concat(utf8(L.signal), lp(peer), lp(self)), 32);
  const confirmKey = await hkdf(pairKey, NO_SALT, utf8(L.confirm), 32);
  return new Pair({
    roomID: keys.roomID, self, peer,
    // raw keys kept for the test vectors (not secret from this page anyway)
    pairKey, sendKey, recvKey, confirmKey,
    _send: await gcmKey(sendKey), _recv: await gcmKey(recvKey),
    _confirm: await hmacKey(confirmKey, ['sign', 'verify']),
  });
}

// ---- file chunks ----------------------------------------------------------

/** Derives the chunk key bytes from a file key (exposed for the vectors). */
export function chunkKeyBytes(fileKey) { return hkdf(fileKey, NO_SALT, utf8(L.chunk), 32); }

/** Seals and opens the chunks of one file. */
export class ChunkCipher {
  /** @private use newChunkCipher */
  constructor(key, count, size, prefix) { this._key = key; this.count = count; this.size = size; this._prefix = prefix; }

  _nonceAAD(index, final) {
    const f = final ? 1 : 0;
    const nonce = new Uint8Array(12);
    const dv = new DataView(nonce.buffer);
    dv.setBigUint64(0, BigInt(index));
    nonce[11] = f;
    const aad = new Uint8Array(this._prefix.length + 17);
    aad.set(this._prefix);
    const t = new DataView(aad.buffer, this._prefix.length);
    t.setUint32(0, index); t.setUint8(4, f); t.setUint32(5, this.count); t.setBigUint64(9, BigInt(this.size));
    return { nonce, aad };
  }

  /** The sealed chunk index (final = index == count-1). */
  async seal(index, plaintext) {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RangeError(`seal chunk ${index} of a file of ${this.count} chunks`);
    const { nonce, aad } = this._nonceAAD(index, index === this.count - 1);
    return gcmSeal(this._key, nonce, plaintext, aad);
  }

  /** The plaintext of sealed chunk index; final is the frame's flag. Throws OpenError. */
  async open(index, final, sealed) {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new OpenError(`chunk ${index} of a file of ${this.count} chunks`);
    if (final !== (index === this.count - 1)) throw new OpenError(`final flag ${final} on chunk ${index} of ${this.count}`);
    if (sealed.length < GCM_TAG) throw new OpenError('sealed chunk too short');
    const { nonce, aad } = this._nonceAAD(index, final);
    return gcmOpen(this._key, nonce, sealed, aad);
  }
}

/** Prepares chunk sealing for one file: key = the 32-byte file key; every
 * chunk's AAD binds version, roomID, sender, file (16 bytes), index, final,
 * count and size. */
export async function newChunkCipher(key, roomID, sender, file, count, size) {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new Error('chunk cipher: file key must be 32 bytes');
  if (!Number.isInteger(count) || count <= 0 || count > 0xffffffff) throw new Error('chunk cipher: bad chunk count');
  if (!Number.isSafeInteger(size) || size < 0) throw new Error('chunk cipher: bad size');
  if (!fitsLP(sender)) throw new Error('chunk cipher: sender id too long');
  const ck = await chunkKeyBytes(key);
  const k = await gcmKey(ck);
  ck.fill(0);
  const prefix = concat(utf8(L.chunk), u8(VERSION), roomID, lp(sender), file);
  return new ChunkCipher(k, count, size, prefix);
}

// ---- chat -----------------------------------------------------------------

export const CHAT_PAD_TO = 256;
export const MAX_CHAT_BYTES = 16 << 10;

/** The chat plaintext: {"kind":"chat","text":…,"pad":"   "} padded with
 * spaces to a multiple of 256 bytes (the pad field is always present). */
export function chatPlaintext(text) {
  const base = utf8(JSON.stringify({ kind: 'chat', text })).length + utf8(',"pad":""').length;
  const pad = ' '.repeat((CHAT_PAD_TO - (base % CHAT_PAD_TO)) % CHAT_PAD_TO);
  return utf8(JSON.stringify({ kind: 'chat', text, pad }));
}

// ---- streaming SHA-256 ----------------------------------------------------
// WebCrypto has no incremental digest; files are hashed chunk by chunk with
// this one (FIPS 180-4), checked against subtle.digest in the browser tests.

const K256 = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 {
  constructor() {
    this._h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this._w = new Int32Array(64);
    this._buf = new Uint8Array(64);
    this._bufLen = 0;
    this._len = 0; // bytes hashed (safe up to 2^53)
    this._done = false;
  }

  _blocks(b, off, end) {
    const w = this._w, h = this._h;
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    for (; off + 64 <= end; off += 64) {
      for (let i = 0; i < 16; i++) {
        const j = off + 4 * i;
        w[i] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        const x = w[i - 15], y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let a = h0, bb = h1, c = h2, d = h3, e = h4, f = h5, g = h6, hh = h7;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (hh + S1 + ch + K256[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & bb) ^ (a & c) ^ (bb & c);
        const t2 = (S0 + maj) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + hh) | 0;
    }
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
  }

  /** Adds bytes (Uint8Array) to the hash. */
  update(data) {
    if (this._done) throw new Error('sha256: update after digest');
    let off = 0;
    const n = data.length;
    this._len += n;
    if (this._bufLen > 0) {
      const take = Math.min(64 - this._bufLen, n);
      this._buf.set(data.subarray(0, take), this._bufLen);
      this._bufLen += take; off = take;
      if (this._bufLen < 64) return this;
      this._blocks(this._buf, 0, 64);
      this._bufLen = 0;
    }
    const end = off + ((n - off) & ~63);
    this._blocks(data, off, end);
    if (end < n) { this._buf.set(data.subarray(end), 0); this._bufLen = n - end; }
    return this;
  }

  /** The 32-byte digest; the hash cannot be updated afterwards. */
  digest() {
    if (this._done) throw new Error('sha256: digest twice');
    const bits = BigInt(this._len) * 8n;
    const padLen = this._bufLen < 56 ? 56 - this._bufLen : 120 - this._bufLen;
    const pad = new Uint8Array(padLen + 8);
    pad[0] = 0x80;
    new DataView(pad.buffer).setBigUint64(padLen, bits);
    const len = this._len;
    this.update(pad);
    this._len = len;
    this._done = true;
    const out = new Uint8Array(32);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) dv.setInt32(4 * i, this._h[i]);
    return out;
  }
}
