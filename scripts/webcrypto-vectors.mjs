// Checks internal/crypto/testdata/vectors.json with WebCrypto (Node), the
// same API the browser client uses: every derived key, MAC and sealed byte
// string must match what the Go code produced. Exits non-zero on a mismatch.
import { readFileSync } from 'node:fs';
const { subtle } = globalThis.crypto;
const v = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const h = (s) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
const hx = (b) => Buffer.from(b).toString('hex');
const te = new TextEncoder();
const cat = (...a) => { const n = a.reduce((s, x) => s + x.length, 0); const o = new Uint8Array(n); let i = 0; for (const x of a) { o.set(x, i); i += x.length; } return o; };
const lp = (b) => { if (typeof b === 'string') b = te.encode(b); return cat(Uint8Array.of(b.length >> 8, b.length & 255), b); };
const u32 = (n) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };
const u64 = (n) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n)); return b; };
let fails = 0, checks = 0;
const eq = (what, got, want) => { checks++; if (hx(got) !== want) { fails++; console.log('FAIL', what, hx(got), want); } };
async function hkdf(ikm, salt, info, n) {
  const k = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, k, n * 8));
}
async function hmac(key, data) {
  const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', k, data));
}
async function gcm(key, iv, pt, aad) {
  const k = await subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, pt));
}
async function gcmOpen(key, iv, ct, aad) {
  const k = await subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  try { return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, ct)); } catch { return null; }
}
const b64u = (b) => Buffer.from(b).toString('base64url');

// Room keys.
const secret = h(v.room_keys.secret_hex), salt = te.encode(v.room_keys.hkdf_salt_utf8);
const rk = {};
for (const [lab, n, f] of [['room-id', 16, 'room_id_hex'], ['verifier', 32, 'verifier_hex'], ['announce', 32, 'announce_key_hex'], ['content', 32, 'content_key_hex'], ['pair-salt', 32, 'pair_salt_hex']]) {
  rk[f] = await hkdf(secret, salt, te.encode('cloakroom/v1 ' + lab), n);
  eq(lab, rk[f], v.room_keys[f]);
}
eq('fragment', te.encode(b64u(secret)), hx(te.encode(v.secret.fragment)));
const roomID = rk.room_id_hex;
// Announce.
const ain = cat(te.encode('cloakroom/v1 announce'), roomID, lp(v.announce.member), lp(h(v.announce.pub_hex)));
eq('announce input', ain, v.announce.mac_input_hex);
eq('announce mac', await hmac(rk.announce_key_hex, ain), v.announce.mac_hex);
// ECDH via JWK import of the scalar.
const P = v.pair;
async function priv(m) {
  const pub = h(m.public_uncompressed_hex);
  return subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', d: b64u(h(m.private_scalar_hex)), x: b64u(pub.slice(1, 33)), y: b64u(pub.slice(33)) }, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
}
const pubB = await subtle.importKey('raw', h(P.b.public_uncompressed_hex), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
const shared = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: pubB }, await priv(P.a), 256));
eq('shared', shared, P.ecdh_shared_hex);
const [lo, hi] = P.a.member < P.b.member ? [P.a, P.b] : [P.b, P.a];
const pinfo = cat(te.encode('cloakroom/v1 pair'), roomID, lp(lo.member), lp(h(lo.public_uncompressed_hex)), lp(hi.member), lp(h(hi.public_uncompressed_hex)));
eq('pair info', pinfo, P.pair_hkdf_info_hex);
const pairKey = await hkdf(shared, rk.pair_salt_hex, pinfo, 32);
eq('pair key', pairKey, P.pair_key_hex);
const sigKey = {};
sigKey[P.a.member] = await hkdf(pairKey, new Uint8Array(0), cat(te.encode('cloakroom/v1 signal'), lp(P.a.member), lp(P.b.member)), 32);
sigKey[P.b.member] = await hkdf(pairKey, new Uint8Array(0), cat(te.encode('cloakroom/v1 signal'), lp(P.b.member), lp(P.a.member)), 32);
eq('sig a->b', sigKey[P.a.member], P.signal_key_a_to_b_hex);
eq('sig b->a', sigKey[P.b.member], P.signal_key_b_to_a_hex);
const confirmKey = await hkdf(pairKey, new Uint8Array(0), te.encode('cloakroom/v1 confirm'), 32);
eq('confirm key', confirmKey, P.confirm_key_hex);
for (const s of P.signals) {
  const nonce = cat(new Uint8Array(4), u64(s.counter));
  const aad = cat(te.encode('cloakroom/v1 signal'), Uint8Array.of(v.version), roomID, lp(s.from), lp(s.to), u64(s.counter));
  eq('signal aad', aad, s.aad_hex);
  eq('signal', cat(u64(s.counter), await gcm(sigKey[s.from], nonce, te.encode(s.plaintext_utf8), aad)), s.sealed_hex);
}
for (const c of P.confirms) {
  const inp = cat(te.encode('cloakroom/v1 confirm'), lp(c.offerer_fingerprint), lp(c.answerer_fingerprint), Uint8Array.of(c.author_is_offerer ? 1 : 0), lp(c.author), lp(c.recipient));
  eq('confirm input', inp, c.mac_input_hex);
  eq('confirm tag', await hmac(confirmKey, inp), c.tag_hex);
}
// Envelopes.
async function env(e) {
  const id = h(e.id_hex), mk = h(e.message_key_hex), nonce = h(e.nonce_hex), pt = te.encode(e.plaintext_utf8);
  const aad = cat(te.encode('cloakroom/v1 envelope'), Uint8Array.of(v.version), roomID, lp(e.sender), id, lp(e.file), u32(e.chunks));
  eq('env aad', aad, e.aad_hex);
  const wrapped = await gcm(rk.content_key_hex, nonce, mk, aad);
  eq('env sealed', cat(Uint8Array.of(v.version), id, nonce, wrapped, await gcm(mk, new Uint8Array(12), pt, aad)), e.sealed_hex);
}
for (const e of v.envelopes) await env(e);
await env(v.manifest.envelope);
checks++; if (JSON.stringify({ kind: 'file', ...v.manifest.manifest }) !== v.manifest.envelope.plaintext_utf8) { fails++; console.log('FAIL manifest json', JSON.stringify({ kind: 'file', ...v.manifest.manifest })); }
// Chunks.
for (const set of v.chunk_sets) {
  const ck = await hkdf(h(set.file_key_hex), new Uint8Array(0), te.encode('cloakroom/v1 chunk'), 32);
  eq('chunk key', ck, set.chunk_key_hex);
  for (const c of set.chunks) {
    const f = c.final ? 1 : 0;
    const nonce = cat(u64(c.index), Uint8Array.of(0, 0, 0, f));
    const aad = cat(te.encode('cloakroom/v1 chunk'), Uint8Array.of(v.version), h(set.room_id_hex), lp(set.sender), h(set.file_id_hex), u32(c.index), Uint8Array.of(f), u32(set.count), u64(set.size));
    eq('chunk nonce', nonce, c.nonce_hex); eq('chunk aad', aad, c.aad_hex);
    eq('chunk', await gcm(ck, nonce, h(c.plaintext_hex), aad), c.sealed_hex);
  }
}
for (const b of v.negative.chunks) {
  const ck = await hkdf(h(b.file_key_hex), new Uint8Array(0), te.encode('cloakroom/v1 chunk'), 32);
  const f = b.final ? 1 : 0;
  const ok = b.index < b.count && (b.final === (b.index === b.count - 1));
  const aad = cat(te.encode('cloakroom/v1 chunk'), Uint8Array.of(v.version), h(b.room_id_hex), lp(b.sender), h(b.file_id_hex), u32(b.index), Uint8Array.of(f), u32(b.count), u64(b.size));
  const s = h(b.sealed_hex);
  checks++;
  if (ok && s.length >= 16 && (await gcmOpen(ck, cat(u64(b.index), Uint8Array.of(0, 0, 0, f)), s, aad)) !== null) { fails++; console.log('FAIL negative chunk opened', b.description); }
}
console.log(`${checks} checks, ${fails} failures`);
process.exit(fails || checks < 50 ? 1 : 0);
