// Cloakroom cryptography for the browser: the exact port of internal/crypto
// (see internal/crypto/format.go for every byte layout) on WebCrypto only.
// It is checked against internal/crypto/testdata/vectors.json in Chromium by
// webtest/vectors.mjs, so a browser and the Go CLI always interoperate.
//
// Byte strings are Uint8Array; member and file ids are lower-case UUID
// strings, written into AAD/info/MAC inputs as lp(UTF-8 bytes).
//
// This module is the one the rest of the page imports; the code lives in
// crypto/: bytes.js (encodings), primitives.js (labels, errors, WebCrypto),
// invite.js (the secret and its encodings), room-keys.js (room keys and
// envelopes), plaintext.js (manifests, chat), pair.js (identities, pairwise
// keys), chunks.js (file chunks), sha256.js (streaming SHA-256).

export {
  utf8, fromUTF8, concat, u32, u64, toHex, fromHex, b64u, unb64u,
  validUUID, uuidBytes, uuidString, newUUID, randomBytes,
} from './crypto/bytes.js';
export { VERSION, OpenError, ReplayError, hasWebCrypto, sha256 } from './crypto/primitives.js';
export * from './crypto/invite.js';
export * from './crypto/room-keys.js';
export { MAX_CHUNK_SIZE, MAX_POSTER_BYTES, MAX_DURATION, MAX_POSTER_MANIFEST, manifestPlaintext, posterFits, chunkCount, validateManifest, CHAT_PAD_TO, MAX_CHAT_BYTES, chatPlaintext } from './crypto/plaintext.js';
export * from './crypto/pair.js';
export * from './crypto/chunks.js';
export * from './crypto/sha256.js';
