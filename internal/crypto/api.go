// Package crypto implements Cloakroom's key scheme (DESIGN.md "Keys"): the
// room secret and its encodings, HKDF-SHA256 derivations, ECDH P-256 member
// identities with MAC'd announcements, pairwise keys, and sealing of signals,
// message envelopes, file manifests and file chunks with AES-256-GCM.
// Only the standard library and golang.org/x/crypto are used.
//
// THIS FILE IS THE CONTRACT: the signatures below are used by client/ and
// signaling/; implementations may move to other files of the package.
package crypto

import (
	"crypto/ecdh"
	"errors"
)

// Errors.
var (
	ErrTypo        = errors.New("mini code has a typo (check character does not match)")
	ErrBadSecret   = errors.New("not a room link, fragment or mini code")
	ErrOpen        = errors.New("decryption failed: wrong key or tampered data")
	ErrReplay      = errors.New("signal replayed or out of order")
	ErrBadAnnounce = errors.New("member announcement MAC does not verify")
)

// Version is bound into every AAD.
const Version = 1

// SecretLen is the room secret size in bytes (128 bits).
const SecretLen = 16

// Secret is a room secret. Whoever holds it is a member.
type Secret [SecretLen]byte

// NewSecret returns a secret from crypto/rand.
func NewSecret() (Secret, error) { return newSecret() }

// Fragment is the URL-fragment form: base64url without padding (22 chars).
func (s Secret) Fragment() string { return s.fragment() }

// Link returns base + "/#" + Fragment(); base is like "https://host:8080"
// (a trailing slash on base is not doubled).
func (s Secret) Link(base string) string { return s.link(base) }

// MiniCode returns the grouped Crockford base32 form with a check character,
// e.g. "K7QX-2M9P-…" (upper case, groups of 4 joined by '-').
func (s Secret) MiniCode() string { return s.miniCode() }

// ParseInvite accepts a full link ("https://host/#FRAG"), a bare fragment
// (with or without '#') or a mini code (any case, any spaces/dashes, O->0,
// I/L->1). It returns the server base URL ("https://host", "" when the input
// holds none) and the secret. A mini code whose check fails gives ErrTypo.
// Links must be http:// or https:// and carry the secret (fragment or mini
// code) after '#'; the server is scheme://host[:port], path and query dropped.
// Every other failure wraps ErrBadSecret. Errors never quote the input.
func ParseInvite(input string) (server string, s Secret, err error) { return parseInvite(input) }

// RoomKeys are the keys derived from a secret with HKDF-SHA256 and distinct
// labels. Only RoomID and Verifier are ever sent to the server.
type RoomKeys struct {
	RoomID      [16]byte // what the server routes on
	Verifier    [32]byte // the join capability the server checks
	AnnounceKey [32]byte // MACs member announcements
	ContentKey  [32]byte // wraps per-message keys of envelopes
	PairSalt    [32]byte // HKDF salt for pairwise keys
}

// DeriveRoom derives every room key from s.
func DeriveRoom(s Secret) *RoomKeys { return deriveRoom(s) }

// RoomIDString is RoomID in base64url without padding (the wire form).
func (k *RoomKeys) RoomIDString() string { return b64.EncodeToString(k.RoomID[:]) }

// Announce returns the MAC of a member announcement (member id + public key).
// It returns nil if member or pub is over 65535 bytes (see format.go).
func (k *RoomKeys) Announce(member string, pub []byte) []byte { return k.announce(member, pub) }

// VerifyAnnounce checks an announcement MAC in constant time (ErrBadAnnounce).
func (k *RoomKeys) VerifyAnnounce(member string, pub, mac []byte) error {
	return k.verifyAnnounce(member, pub, mac)
}

// Identity is a member's per-session ECDH P-256 key pair.
type Identity struct {
	Priv *ecdh.PrivateKey
	Pub  []byte // uncompressed point, 65 bytes
}

// NewIdentity makes a fresh key pair.
func NewIdentity() (*Identity, error) { return newIdentity() }

// Pair is the pairwise channel between this member (self) and a peer:
// directional signal keys with counter nonces, and key confirmation.
// It is safe for concurrent use.
//
// Keep exactly one Pair per (own identity, peer id, peer key) for the whole
// session and reuse it across reconnects: the keys are a deterministic
// function of the two identities, so a second Pair would restart the send
// counter at 1 and reuse AES-GCM nonces. Make a new Identity when a Pair has
// to be rebuilt (for instance after a page reload).
type Pair struct {
	pairState // implementation fields (pair.go)
}

// NewPair computes the pairwise key HKDF(ECDH(self, peer), salt = PairSalt,
// info = sorted (id, pub) of both members) and the directional keys.
func NewPair(k *RoomKeys, self string, id *Identity, peer string, peerPub []byte) (*Pair, error) {
	return newPair(k, self, id, peer, peerPub)
}

// SealSignal seals a signal from self to peer with the next send counter.
// Output: counter (8 bytes big-endian) || ciphertext+tag.
func (p *Pair) SealSignal(plaintext []byte) ([]byte, error) { return p.sealSignal(plaintext) }

// OpenSignal opens a signal from peer to self; counters must strictly
// increase (ErrReplay otherwise); a tampered signal gives ErrOpen.
func (p *Pair) OpenSignal(sealed []byte) ([]byte, error) { return p.openSignal(sealed) }

// Confirm returns the key-confirmation tag over both DTLS fingerprints and
// the roles (offerer, answerer) that this side sends after a data channel opens.
// fromOfferer tells the role of the tag's author: here, whether this side is
// the offerer. The tag also binds author and recipient ids, so a tag reflected
// back does not verify. Nil if a field is over 65535 bytes.
func (p *Pair) Confirm(offererFP, answererFP string, fromOfferer bool) []byte {
	return p.confirm(offererFP, answererFP, fromOfferer)
}

// VerifyConfirm checks the peer's tag in constant time. fromOfferer tells the
// role of the tag's author, the peer: pass true when the peer is the offerer.
// A mismatch returns an error wrapping ErrOpen.
func (p *Pair) VerifyConfirm(offererFP, answererFP string, fromOfferer bool, tag []byte) error {
	return p.verifyConfirm(offererFP, answererFP, fromOfferer, tag)
}

// EnvelopeMeta is the routing information of an envelope that the server
// sees; all of it is bound into the AAD.
type EnvelopeMeta struct {
	Sender string // member id of the author
	File   string // file id when the envelope is a file manifest, else ""
	Chunks uint32 // chunk count when it is a manifest, else 0
}

// SealEnvelope seals plaintext under a fresh random 256-bit message key,
// itself wrapped under ContentKey. It returns the envelope id (random, unique)
// and the sealed bytes. Layout: format.go.
func (k *RoomKeys) SealEnvelope(meta EnvelopeMeta, plaintext []byte) (id [16]byte, sealed []byte, err error) {
	return k.sealEnvelope(meta, plaintext)
}

// OpenEnvelope opens an envelope whose routing info is meta. Every failure
// (length, version, key, tampering, wrong meta) gives an error wrapping ErrOpen.
func (k *RoomKeys) OpenEnvelope(meta EnvelopeMeta, sealed []byte) (id [16]byte, plaintext []byte, err error) {
	return k.openEnvelope(meta, sealed)
}

// Manifest describes a file; it travels sealed as an envelope with
// meta.File = File and meta.Chunks = Chunks.
type Manifest struct {
	File      string `json:"file"` // uuid
	Name      string `json:"name"`
	Type      string `json:"type"`
	Size      int64  `json:"size"`
	ChunkSize int    `json:"chunkSize"`
	Chunks    uint32 `json:"chunks"`
	SHA256    string `json:"sha256"` // hex
	Key       string `json:"key"`    // base64url of the 32-byte file key
	// The sender's stamp (protocol.Stamp: session, seq, send time in unix
	// ms), so a receiver can tell a replayed announcement; optional here,
	// required by the clients for announcements through the relay.
	Sess string `json:"sess,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	TS   int64  `json:"ts,omitempty"`
	// Hashes commits to every chunk (protocol v4): base64url SHA-256 of
	// each hash piece, a piece being the 32-byte SHA-256 digests of
	// HashesPerPiece consecutive chunks' plaintext (unpadded). Optional
	// here; the v4 clients require it.
	Hashes []string `json:"hashes,omitempty"`
	// Duration is the media's length in seconds (a video's), for the
	// receiver to show before any chunk arrived: finite, > 0 and at most
	// MaxDuration when present; 0 means none. Optional (protocol v4).
	Duration float64 `json:"duration,omitempty"`
	// Poster is a small JPEG preview of the file (a video's frame),
	// base64url without padding: at most MaxPosterBytes decoded, starting
	// with FF D8 FF; "" means none. A manifest with a poster is at most
	// MaxPosterManifest bytes of JSON. Optional (protocol v4).
	Poster string `json:"poster,omitempty"`
}

// Bounds of the optional preview fields of a manifest.
const (
	MaxPosterBytes = 8192 // decoded JPEG bytes
	MaxDuration    = 1e7  // seconds (about 116 days)
	// MaxPosterManifest bounds the JSON plaintext of a manifest that carries
	// a poster, so its envelope still fits a lib signal with a full have
	// list (docs/PROTOCOL.md "Poster and duration"). A sender drops the
	// poster when the manifest would be larger.
	MaxPosterManifest = 16 << 10
)

// HashesPerPiece is how many chunk hashes make one hash piece (the same
// number as protocol.HashesPerPiece; crypto imports no other package).
const HashesPerPiece = 2000

// SealManifest seals m as an envelope from sender. The plaintext is the JSON
// object of m's fields plus "kind":"file". m must pass the checks of
// OpenManifest.
func (k *RoomKeys) SealManifest(sender string, m *Manifest) ([]byte, error) {
	return k.sealManifest(sender, m)
}

// OpenManifest opens and validates a manifest (chunk count consistent with
// size and chunk size, key length, sha256 form, non-empty name without path
// separators). Also checked: kind "file", File is a lower-case UUID equal to
// meta.File, Chunks == meta.Chunks, ChunkSize in 1..64512, Size >= 0, SHA256
// is 64 lower-case hex characters, Name at most 255 bytes and not "." or "..",
// no NUL; an optional duration finite, > 0 and <= MaxDuration; an optional
// poster base64url of at most MaxPosterBytes starting FF D8 FF, in a
// manifest of at most MaxPosterManifest bytes. Decryption failures wrap
// ErrOpen.
func (k *RoomKeys) OpenManifest(meta EnvelopeMeta, sealed []byte) (*Manifest, error) {
	return k.openManifest(meta, sealed)
}

// ChunkCount returns the number of chunks of a file of size bytes (at least 1:
// an empty file has one empty chunk). It returns 0 for invalid input: size < 0,
// chunkSize < 1, or more than 2^32-1 chunks.
func ChunkCount(size int64, chunkSize int) uint32 { return chunkCount(size, chunkSize) }

// ChunkCipher seals and opens the chunks of one file. It is safe for
// concurrent use, and Seal/Open do not allocate beyond growing dst.
type ChunkCipher struct {
	chunkState // implementation fields (chunk.go)
}

// NewChunkCipher prepares chunk sealing for one file: key is the 32-byte file
// key from the manifest; every chunk's AAD binds Version, roomID, sender,
// file, index, final flag, count and size.
func NewChunkCipher(key []byte, roomID [16]byte, sender string, file [16]byte, count uint32, size int64) (*ChunkCipher, error) {
	return newChunkCipher(key, roomID, sender, file, count, size)
}

// Seal appends the sealed chunk index to dst (final = index == count-1).
// It panics if index >= count (a programming error). dst may not overlap
// plaintext unless dst[len(dst):] starts exactly at plaintext (in place).
func (c *ChunkCipher) Seal(dst []byte, index uint32, plaintext []byte) []byte {
	return c.seal(dst, index, plaintext)
}

// Open appends the plaintext of sealed chunk index to dst; final must be the
// flag carried by the frame. Any mismatch gives ErrOpen (and a nil slice).
// In-place decryption: pass sealed[:0] as dst.
func (c *ChunkCipher) Open(dst []byte, index uint32, final bool, sealed []byte) ([]byte, error) {
	return c.open(dst, index, final, sealed)
}
