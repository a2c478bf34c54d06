// File chunks: sealing and opening the chunks of one file under its file
// key, each bound to the room, sender, file, index, count and size.
import { concat, fitsLP, lp, u8, utf8 } from './bytes.js';
import { GCM_TAG, L, NO_SALT, OpenError, VERSION, gcmKey, gcmOpen, gcmSeal, hkdf } from './primitives.js';

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
