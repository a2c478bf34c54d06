// The key scheme's building blocks: the version and HKDF labels of
// internal/crypto, its errors, and the WebCrypto primitives (HKDF-SHA-256,
// HMAC-SHA-256, AES-256-GCM) the other crypto modules use.

export const subtle = globalThis.crypto?.subtle;

export const VERSION = 1;

export const L = {
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
export const GCM_TAG = 16;

/** Decryption failed: wrong key or tampered data. */
export class OpenError extends Error {
  constructor(message = 'decryption failed: wrong key or tampered data') { super(message); this.name = 'OpenError'; }
}
/** A signal replayed or out of order. */
export class ReplayError extends Error {
  constructor() { super('signal replayed or out of order'); this.name = 'ReplayError'; }
}

export function hasWebCrypto() { return !!subtle; }

export async function hkdf(ikm, salt, info, n) {
  const k = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, k, n * 8));
}
export const hmacKey = (raw, uses) => subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, uses);
export const gcmKey = (raw) => subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
export async function gcmSeal(key, iv, pt, aad) {
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, pt));
}
export async function gcmOpen(key, iv, ct, aad) {
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, ct));
  } catch {
    throw new OpenError();
  }
}
export const NO_SALT = new Uint8Array(0);

/** SHA-256 of bytes in one go (WebCrypto). */
export async function sha256(b) { return new Uint8Array(await subtle.digest('SHA-256', b)); }
