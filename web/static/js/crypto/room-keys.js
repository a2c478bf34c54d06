// Room keys: everything derived from the room secret — the room id and
// verifier the server sees, member announcements, and envelopes sealed under
// the content key (chat and file manifests).
import { b64u, concat, fitsLP, lp, randomBytes, u32, u8, utf8 } from './bytes.js';
import { GCM_TAG, L, OpenError, VERSION, gcmKey, gcmOpen, gcmSeal, hkdf, hmacKey, subtle } from './primitives.js';
import { SECRET_LEN } from './invite.js';
import { MAX_POSTER_MANIFEST, manifestPlaintext, parseManifest, posterFits, validateManifest } from './plaintext.js';

const ENVELOPE_HEADER = 1 + 16 + 12 + 32 + GCM_TAG; // version, id, nonce, wrapped key

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
    const pt = manifestPlaintext(m);
    if (!posterFits(m, pt)) throw new Error(`seal manifest: manifest with a poster is ${pt.length} bytes (max ${MAX_POSTER_MANIFEST}): drop the poster`);
    const { sealed } = await this.sealEnvelope({ sender, file: m.file, chunks: m.chunks }, pt, fixed);
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
    if (!posterFits(m, plaintext)) throw new Error(`open manifest: manifest with a poster is ${plaintext.length} bytes (max ${MAX_POSTER_MANIFEST})`);
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
