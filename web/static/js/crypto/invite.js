// The room secret and its encodings: the invite link, its fragment and the
// mini code (internal/crypto/invite.go), parsed back from what users paste.
import { b64u, randomBytes, unb64u } from './bytes.js';

export const SECRET_LEN = 16;

/** Invite parse error; code is 'typo' (check character) or 'bad_secret'. */
export class InviteError extends Error {
  constructor(code, message) { super(message); this.name = 'InviteError'; this.code = code; }
}

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
