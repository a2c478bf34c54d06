package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// Byte layouts, version 1.
//
// This is the exact definition the JavaScript port follows; the test vectors
// in testdata/vectors.json carry every input below in hex as well.
//
// Notation: "label" is the ASCII label written raw (no length, no NUL);
// lp(x) is uint16 big-endian len(x) followed by the bytes of x (member ids,
// file ids and fingerprints are their UTF-8 strings, public keys the 65-byte
// uncompressed point); u8/u32/u64 are big-endian integers; fixed-size fields
// (room id 16, envelope id 16, file id 16) are written raw; ‖ concatenates.
// A variable field longer than 65535 bytes is refused (error, nil tag or
// failed open), never truncated.
//
// HKDF is HKDF-SHA256 (RFC 5869). "salt = none" means an empty salt, which
// is the same as HashLen zero bytes (WebCrypto: salt = new Uint8Array(0)).
//
// Room keys (ikm = the 16-byte secret, salt = "cloakroom/v1"):
//
//	RoomID      = HKDF(info "cloakroom/v1 room-id",   16 bytes)
//	Verifier    = HKDF(info "cloakroom/v1 verifier",  32 bytes)
//	AnnounceKey = HKDF(info "cloakroom/v1 announce",  32 bytes)
//	ContentKey  = HKDF(info "cloakroom/v1 content",   32 bytes)
//	PairSalt    = HKDF(info "cloakroom/v1 pair-salt", 32 bytes)
//
// Announcement MAC:
//
//	HMAC-SHA256(AnnounceKey, "cloakroom/v1 announce" ‖ RoomID(16) ‖ lp(member) ‖ lp(pub))
//
// Pairwise keys, with (idLow,pubLow) the member whose id sorts first bytewise:
//
//	shared   = ECDH-P256(own private, peer public) x-coordinate (32 bytes)
//	pairKey  = HKDF(ikm shared, salt PairSalt,
//	                info "cloakroom/v1 pair" ‖ RoomID(16) ‖ lp(idLow) ‖ lp(pubLow) ‖ lp(idHigh) ‖ lp(pubHigh), 32)
//	sigKey(from→to) = HKDF(ikm pairKey, salt none, info "cloakroom/v1 signal" ‖ lp(from) ‖ lp(to), 32)
//	confirmKey      = HKDF(ikm pairKey, salt none, info "cloakroom/v1 confirm", 32)
//
// Signal (AES-256-GCM under sigKey(from→to), counter c starts at 1 per direction):
//
//	nonce  = 00 00 00 00 ‖ u64(c)
//	aad    = "cloakroom/v1 signal" ‖ u8(Version) ‖ RoomID(16) ‖ lp(from) ‖ lp(to) ‖ u64(c)
//	sealed = u64(c) ‖ ciphertext ‖ tag(16)
//
// Key confirmation (the author is the member that sends the tag):
//
//	tag = HMAC-SHA256(confirmKey, "cloakroom/v1 confirm" ‖ lp(offererFP) ‖ lp(answererFP) ‖
//	                  u8(1 if the author is the offerer else 0) ‖ lp(author id) ‖ lp(recipient id))
//
// Envelope (id: 16 random bytes, msgKey: 32 random bytes, nonce: 12 random bytes):
//
//	aad     = "cloakroom/v1 envelope" ‖ u8(Version) ‖ RoomID(16) ‖ lp(sender) ‖ id(16) ‖ lp(file) ‖ u32(chunks)
//	wrapped = AES-256-GCM(ContentKey, nonce, msgKey, aad)          (48 bytes)
//	body    = AES-256-GCM(msgKey, 12 zero bytes, plaintext, aad)   (single-use key)
//	sealed  = u8(Version) ‖ id(16) ‖ nonce(12) ‖ wrapped(48) ‖ body
//
// (file is "" and chunks 0 for a chat envelope.) A manifest is an envelope
// whose plaintext is the JSON object
// {"kind":"file","file","name","type","size","chunkSize","chunks","sha256","key"}
// sealed with file = manifest file id and chunks = manifest chunk count.
//
// Chunk i of n (final = 1 if i == n-1 else 0; size = file size in bytes):
//
//	chunkKey = HKDF(ikm fileKey, salt none, info "cloakroom/v1 chunk", 32)
//	nonce    = u64(i) ‖ 00 00 00 ‖ u8(final)
//	aad      = "cloakroom/v1 chunk" ‖ u8(Version) ‖ RoomID(16) ‖ lp(sender) ‖ file(16) ‖
//	           u32(i) ‖ u8(final) ‖ u32(n) ‖ u64(size)
//	sealed   = ciphertext ‖ tag(16)

// Labels (HKDF infos and MAC/AAD domain separators).
const (
	roomSalt       = "cloakroom/v1"
	labelRoomID    = "cloakroom/v1 room-id"
	labelVerifier  = "cloakroom/v1 verifier"
	labelAnnounce  = "cloakroom/v1 announce"
	labelContent   = "cloakroom/v1 content"
	labelPairSalt  = "cloakroom/v1 pair-salt"
	labelPair      = "cloakroom/v1 pair"
	labelSignal    = "cloakroom/v1 signal"
	labelConfirm   = "cloakroom/v1 confirm"
	labelEnvelope  = "cloakroom/v1 envelope"
	labelChunk     = "cloakroom/v1 chunk"
	maxFieldLen    = 0xffff // largest lp() field
	keyLen         = 32
	gcmNonceLen    = 12
	gcmTagLen      = 16
	signalCtrLen   = 8
	envelopeIDLen  = 16
	envelopeHeader = 1 + envelopeIDLen + gcmNonceLen + keyLen + gcmTagLen // version, id, nonce, wrapped key
)

// appendLP appends uint16 big-endian len(v) and v. Callers check fitsLP first.
func appendLP[T string | []byte](b []byte, v T) []byte {
	if len(v) > maxFieldLen {
		panic("crypto: length-prefixed field over 65535 bytes")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// fitsLP reports whether every field can be length-prefixed.
func fitsLP(fields ...string) bool {
	for _, f := range fields {
		if len(f) > maxFieldLen {
			return false
		}
	}
	return true
}

// lpLen is the encoded size of lp(v).
func lpLen[T string | []byte](v T) int { return 2 + len(v) }

// deriveKey is HKDF-SHA256 with a fixed output length. It only fails for
// lengths no caller uses.
func deriveKey(ikm, salt []byte, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, ikm, salt, info, n)
	if err != nil {
		panic("crypto: hkdf: " + err.Error())
	}
	return k
}
