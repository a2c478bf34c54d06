// Byte strings for the crypto modules (Uint8Array): UTF-8, concatenation,
// the length-prefixed fields and integers of internal/crypto/format.go, hex,
// base64url, UUIDs and random bytes.

const MAX_FIELD = 0xffff;

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
export function lp(x) {
  const b = typeof x === 'string' ? te.encode(x) : x;
  if (!fits(b)) throw new RangeError('length-prefixed field over 65535 bytes');
  const out = new Uint8Array(2 + b.length);
  out[0] = b.length >> 8; out[1] = b.length & 0xff;
  out.set(b, 2);
  return out;
}
export const fitsLP = (...xs) => xs.every((x) => (typeof x === 'string' ? te.encode(x) : x).length <= MAX_FIELD);
export const u8 = (n) => Uint8Array.of(n & 0xff);
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

/** Constant-time equality of two byte strings. */
export function ctEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Bytewise (UTF-8) comparison of two strings, as Go's string < . */
export function lessUTF8(a, b) {
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
