// The plaintexts sealed in envelopes: file manifests (JSON in Go's field
// order, validated as internal/crypto does) and padded chat messages.
import { fromUTF8, unb64u, utf8, validUUID } from './bytes.js';

export const MAX_CHUNK_SIZE = 64512; // protocol.ChunkSize
// The optional preview (crypto.MaxPosterBytes, MaxDuration, MaxPosterManifest):
// a JPEG poster of at most 8192 bytes, a duration in seconds in (0, 1e7],
// and a manifest with a poster at most 16 KiB of JSON (the sender drops the
// poster when it would be larger).
export const MAX_POSTER_BYTES = 8192;
export const MAX_DURATION = 1e7;
export const MAX_POSTER_MANIFEST = 16 << 10;

const MANIFEST_FIELDS = ['file', 'name', 'type', 'size', 'chunkSize', 'chunks', 'sha256', 'key'];

/** The manifest plaintext: JSON with "kind":"file" then the fields in Go's order. */
// The sender's stamp (order.js), optional in the format, after the fields.
const STAMP_FIELDS = ['sess', 'seq', 'ts'];

export function manifestPlaintext(m) {
  const o = { kind: 'file' };
  for (const k of MANIFEST_FIELDS) o[k] = m[k] ?? (k === 'type' ? '' : m[k]);
  for (const k of STAMP_FIELDS) if (m[k]) o[k] = m[k]; // as Go's omitempty
  if (m.hashes) o.hashes = m.hashes; // protocol v4: the chunk-hash commitment
  if (m.duration) o.duration = m.duration; // optional preview, as Go's omitempty
  if (m.poster) o.poster = m.poster;
  return utf8(JSON.stringify(o));
}

export function parseManifest(pt) {
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
  for (const k of STAMP_FIELDS) {
    if (!has(k)) continue;
    const v = raw[k];
    if (k === 'sess' ? typeof v !== 'string' : !Number.isSafeInteger(v)) throw new Error(`open manifest: manifest "${k}" has the wrong type`);
    m[k] = v;
  }
  if (has('hashes') && raw.hashes !== null) {
    if (!Array.isArray(raw.hashes) || raw.hashes.some((h) => typeof h !== 'string')) throw new Error('open manifest: manifest "hashes" has the wrong type');
    m.hashes = raw.hashes;
  }
  // Present means set (as in Go): null, 0 or "" is refused by validateManifest.
  if (has('duration')) {
    if (typeof raw.duration !== 'number') throw new Error('open manifest: manifest "duration" has the wrong type');
    m.duration = raw.duration;
  }
  if (has('poster')) {
    if (typeof raw.poster !== 'string') throw new Error('open manifest: manifest "poster" has the wrong type');
    m.poster = raw.poster;
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
  if (m.hashes !== undefined) {
    if (!Array.isArray(m.hashes) || m.hashes.length !== Math.ceil(m.chunks / 2000)) return `${m.hashes?.length} piece hashes for ${m.chunks} chunks`;
    for (const h of m.hashes) {
      let b = null;
      try { b = unb64u(h); } catch { /* below */ }
      if (!b || b.length !== 32) return 'a piece hash is not 32 bytes of base64url';
    }
  }
  if (m.type !== undefined && typeof m.type !== 'string') return 'type is not a string';
  const pe = previewError(m);
  if (pe) return pe;
  const n = m.name;
  if (typeof n !== 'string' || n === '') return 'empty file name';
  if (utf8(n).length > 255) return 'file name over 255 bytes';
  if (n === '.' || n === '..') return 'file name is . or ..';
  if (/[\\\0]/.test(n)) return "file name contains '\\' or NUL";
  // A relative path is allowed (a file from a folder: "photos/2024/a.jpg"),
  // never an absolute one or one that climbs (internal/crypto validName).
  if (n.split('/').some((p) => p === '' || p === '.' || p === '..')) return 'file name is not a relative path of named parts';
  return '';
}

/** The optional duration and poster: '' when absent or valid. */
function previewError(m) {
  const d = m.duration;
  if (d !== undefined && !(typeof d === 'number' && d > 0 && d <= MAX_DURATION)) return `duration ${d} not in (0, ${MAX_DURATION}] seconds`;
  if (m.poster === undefined) return '';
  if (typeof m.poster !== 'string' || m.poster === '') return 'empty poster';
  if (m.poster.length > Math.ceil(MAX_POSTER_BYTES * 4 / 3)) return `poster over ${MAX_POSTER_BYTES} bytes`;
  let b = null;
  try { b = unb64u(m.poster); } catch { return 'poster is not base64url'; }
  if (b.length > MAX_POSTER_BYTES) return `poster of ${b.length} bytes (max ${MAX_POSTER_BYTES})`;
  if (b.length < 3 || b[0] !== 0xff || b[1] !== 0xd8 || b[2] !== 0xff) return 'poster is not a JPEG (no FF D8 FF)';
  return '';
}

/** The size bound of a manifest with a poster (pt: its JSON plaintext). */
export function posterFits(m, pt) {
  return !m.poster || pt.length <= MAX_POSTER_MANIFEST;
}

// ---- chat -----------------------------------------------------------------

export const CHAT_PAD_TO = 256;
export const MAX_CHAT_BYTES = 16 << 10;

/** The chat plaintext: {"kind":"chat","text":…,"sess":…,"seq":…,"ts":…,
 * "pad":"   "} padded with spaces to a multiple of 256 bytes (the pad field
 * is always present). stamp is {sess, seq, ts} (order.js). */
export function chatPlaintext(text, stamp) {
  const body = { kind: 'chat', text, sess: stamp.sess, seq: stamp.seq, ts: stamp.ts };
  const base = utf8(JSON.stringify(body)).length + utf8(',"pad":""').length;
  const pad = ' '.repeat((CHAT_PAD_TO - (base % CHAT_PAD_TO)) % CHAT_PAD_TO);
  return utf8(JSON.stringify({ ...body, pad }));
}
