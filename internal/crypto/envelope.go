package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// envelopeAAD is "cloakroom/v1 envelope" ‖ u8(Version) ‖ RoomID ‖ lp(sender) ‖
// id ‖ lp(file) ‖ u32(chunks), or nil when a field is too long.
func (k *RoomKeys) envelopeAAD(meta EnvelopeMeta, id [envelopeIDLen]byte) []byte {
	if !fitsLP(meta.Sender, meta.File) {
		return nil
	}
	b := make([]byte, 0, len(labelEnvelope)+1+len(k.RoomID)+lpLen(meta.Sender)+len(id)+lpLen(meta.File)+4)
	b = append(b, labelEnvelope...)
	b = append(b, Version)
	b = append(b, k.RoomID[:]...)
	b = appendLP(b, meta.Sender)
	b = append(b, id[:]...)
	b = appendLP(b, meta.File)
	return binary.BigEndian.AppendUint32(b, meta.Chunks)
}

func (k *RoomKeys) sealEnvelope(meta EnvelopeMeta, plaintext []byte) ([16]byte, []byte, error) {
	var (
		id     [envelopeIDLen]byte
		msgKey [keyLen]byte
		nonce  [gcmNonceLen]byte
	)
	rand.Read(id[:]) // crypto/rand.Read never fails (it crashes the program instead)
	rand.Read(msgKey[:])
	rand.Read(nonce[:])
	sealed, err := k.sealEnvelopeWith(meta, plaintext, id, msgKey, nonce)
	clear(msgKey[:])
	if err != nil {
		return [16]byte{}, nil, err
	}
	return id, sealed, nil
}

// sealEnvelopeWith is SealEnvelope with the random values given (test vectors).
func (k *RoomKeys) sealEnvelopeWith(meta EnvelopeMeta, plaintext []byte, id [envelopeIDLen]byte, msgKey [keyLen]byte, nonce [gcmNonceLen]byte) ([]byte, error) {
	aad := k.envelopeAAD(meta, id)
	if aad == nil {
		return nil, errors.New("crypto: seal envelope: sender or file id over 65535 bytes")
	}
	out := make([]byte, 0, envelopeHeader+len(plaintext)+gcmTagLen)
	out = append(out, Version)
	out = append(out, id[:]...)
	out = append(out, nonce[:]...)
	out = newGCM(k.ContentKey[:]).Seal(out, nonce[:], msgKey[:], aad)
	var zero [gcmNonceLen]byte
	return newGCM(msgKey[:]).Seal(out, zero[:], plaintext, aad), nil
}

func (k *RoomKeys) openEnvelope(meta EnvelopeMeta, sealed []byte) ([16]byte, []byte, error) {
	var id [envelopeIDLen]byte
	if len(sealed) < envelopeHeader+gcmTagLen {
		return id, nil, fmt.Errorf("%w: envelope of %d bytes is too short", ErrOpen, len(sealed))
	}
	if sealed[0] != Version {
		return id, nil, fmt.Errorf("%w: envelope version %d, want %d", ErrOpen, sealed[0], Version)
	}
	copy(id[:], sealed[1:])
	nonce := sealed[1+envelopeIDLen : 1+envelopeIDLen+gcmNonceLen]
	wrapped := sealed[1+envelopeIDLen+gcmNonceLen : envelopeHeader]
	aad := k.envelopeAAD(meta, id)
	if aad == nil {
		return [16]byte{}, nil, ErrOpen
	}
	msgKey, err := newGCM(k.ContentKey[:]).Open(nil, nonce, wrapped, aad)
	if err != nil {
		return [16]byte{}, nil, ErrOpen
	}
	var zero [gcmNonceLen]byte
	pt, err := newGCM(msgKey).Open(nil, zero[:], sealed[envelopeHeader:], aad)
	clear(msgKey)
	if err != nil {
		return [16]byte{}, nil, ErrOpen
	}
	if pt == nil {
		pt = []byte{}
	}
	return id, pt, nil
}

// Manifest plaintext: a JSON object with "kind":"file" and the Manifest fields:
//
//	{"kind":"file","file":"<uuid>","name":"…","type":"…","size":N,
//	 "chunkSize":N,"chunks":N,"sha256":"<64 hex>","key":"<base64url 32 bytes>"}
//
// Readers take keys case-sensitively (unlike encoding/json's default), the last
// of duplicate keys wins (as in JSON.parse), unknown keys are ignored, every key
// but "type" is required. Optional: "sess", "seq", "ts", "hashes",
// "duration", "poster" (in this order after "key" when written).
type manifestJSON struct {
	Kind string `json:"kind"`
	Manifest
}

const (
	manifestKind = "file"
	maxNameLen   = 255
	maxChunkSize = 64512 // protocol.ChunkSize
	sha256HexLen = 64
	fileKeyLen   = keyLen
)

// marshalManifest is the manifest plaintext (HTML escaping off, as JSON.stringify).
func marshalManifest(m *Manifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(manifestJSON{Kind: manifestKind, Manifest: *m}); err != nil {
		return nil, fmt.Errorf("crypto: manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (k *RoomKeys) sealManifest(sender string, m *Manifest) ([]byte, error) {
	if m == nil {
		return nil, errors.New("crypto: seal manifest: nil manifest")
	}
	if err := validateManifest(m); err != nil {
		return nil, fmt.Errorf("crypto: seal manifest: %w", err)
	}
	pt, err := marshalManifest(m)
	if err != nil {
		return nil, err
	}
	if err := posterFits(m, pt); err != nil {
		return nil, fmt.Errorf("crypto: seal manifest: %w", err)
	}
	_, sealed, err := k.sealEnvelope(EnvelopeMeta{Sender: sender, File: m.File, Chunks: m.Chunks}, pt)
	return sealed, err
}

func (k *RoomKeys) openManifest(meta EnvelopeMeta, sealed []byte) (*Manifest, error) {
	if meta.File == "" {
		return nil, errors.New("crypto: open manifest: envelope has no file id (not a manifest)")
	}
	_, pt, err := k.openEnvelope(meta, sealed)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(pt)
	if err != nil {
		return nil, fmt.Errorf("crypto: open manifest: %w", err)
	}
	if m.File != meta.File {
		return nil, errors.New("crypto: open manifest: file id differs from the envelope's")
	}
	if m.Chunks != meta.Chunks {
		return nil, fmt.Errorf("crypto: open manifest: %d chunks, envelope says %d", m.Chunks, meta.Chunks)
	}
	if err := validateManifest(m); err != nil {
		return nil, fmt.Errorf("crypto: open manifest: %w", err)
	}
	if err := posterFits(m, pt); err != nil {
		return nil, fmt.Errorf("crypto: open manifest: %w", err)
	}
	return m, nil
}

// posterFits checks the size bound of a manifest with a poster (its JSON
// plaintext pt).
func posterFits(m *Manifest, pt []byte) error {
	if m.Poster != "" && len(pt) > MaxPosterManifest {
		return fmt.Errorf("manifest with a poster is %d bytes (max %d): drop the poster", len(pt), MaxPosterManifest)
	}
	return nil
}

// parseManifest decodes the manifest JSON with exact (case-sensitive) keys.
func parseManifest(pt []byte) (*Manifest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(pt, &raw); err != nil {
		return nil, fmt.Errorf("manifest is not a JSON object: %v", err)
	}
	var (
		m    Manifest
		kind string
	)
	fields := []struct {
		key      string
		dst      any
		optional bool
	}{
		{"kind", &kind, false},
		{"file", &m.File, false},
		{"name", &m.Name, false},
		{"type", &m.Type, true},
		{"size", &m.Size, false},
		{"chunkSize", &m.ChunkSize, false},
		{"chunks", &m.Chunks, false},
		{"sha256", &m.SHA256, false},
		{"key", &m.Key, false},
		{"sess", &m.Sess, true},
		{"seq", &m.Seq, true},
		{"ts", &m.TS, true},
		{"hashes", &m.Hashes, true},
		{"duration", &m.Duration, true},
		{"poster", &m.Poster, true},
	}
	for _, f := range fields {
		v, ok := raw[f.key]
		if !ok {
			if f.optional {
				continue
			}
			return nil, fmt.Errorf("manifest has no %q", f.key)
		}
		if bytes.Equal(v, []byte("null")) {
			return nil, fmt.Errorf("manifest %q is null", f.key)
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return nil, fmt.Errorf("manifest %q: %v", f.key, err)
		}
	}
	if kind != manifestKind {
		return nil, fmt.Errorf("envelope kind %q is not %q", kind, manifestKind)
	}
	// Present means set: an explicit 0 or "" is refused, not read as absent.
	if _, ok := raw["duration"]; ok && !(m.Duration > 0) {
		return nil, fmt.Errorf("duration %v is not > 0", m.Duration)
	}
	if _, ok := raw["poster"]; ok && m.Poster == "" {
		return nil, errors.New("empty poster")
	}
	return &m, nil
}

// validateManifest checks the fields of m (not the envelope binding).
func validateManifest(m *Manifest) error {
	switch {
	case !validUUID(m.File):
		return errors.New("file id is not a lower-case UUID")
	case m.Size < 0:
		return fmt.Errorf("negative size %d", m.Size)
	case m.ChunkSize < 1 || m.ChunkSize > maxChunkSize:
		return fmt.Errorf("chunk size %d not in 1..%d", m.ChunkSize, maxChunkSize)
	case m.Chunks == 0 || uint64(m.Chunks) != chunkCount64(m.Size, m.ChunkSize):
		return fmt.Errorf("%d chunks do not fit size %d with chunk size %d", m.Chunks, m.Size, m.ChunkSize)
	case !validSHA256Hex(m.SHA256):
		return errors.New("sha256 is not 64 lower-case hex characters")
	case !validFileKey(m.Key):
		return errors.New("key is not 32 bytes of base64url")
	}
	if err := validHashes(m); err != nil {
		return err
	}
	if err := validPreview(m); err != nil {
		return err
	}
	return validName(m.Name)
}

// validPreview checks the optional duration and poster (zero values: none).
func validPreview(m *Manifest) error {
	if d := m.Duration; d != 0 && !(d > 0 && d <= MaxDuration) { // NaN fails both
		return fmt.Errorf("duration %v not in (0, %g] seconds", d, float64(MaxDuration))
	}
	if m.Poster == "" {
		return nil
	}
	if len(m.Poster) > b64.EncodedLen(MaxPosterBytes) {
		return fmt.Errorf("poster over %d bytes", MaxPosterBytes)
	}
	b, err := b64.DecodeString(m.Poster)
	switch {
	case err != nil:
		return errors.New("poster is not base64url")
	case len(b) > MaxPosterBytes:
		return fmt.Errorf("poster of %d bytes (max %d)", len(b), MaxPosterBytes)
	case len(b) < 3 || b[0] != 0xff || b[1] != 0xd8 || b[2] != 0xff:
		return errors.New("poster is not a JPEG (no FF D8 FF)")
	}
	return nil
}

// validHashes checks the chunk-hash commitment, when there is one: one
// 32-byte digest per hash piece.
func validHashes(m *Manifest) error {
	if m.Hashes == nil {
		return nil
	}
	if want := (uint64(m.Chunks) + HashesPerPiece - 1) / HashesPerPiece; uint64(len(m.Hashes)) != want {
		return fmt.Errorf("%d piece hashes for %d chunks, want %d", len(m.Hashes), m.Chunks, want)
	}
	for _, h := range m.Hashes {
		if b, err := b64.DecodeString(h); err != nil || len(b) != 32 {
			return errors.New("a piece hash is not 32 bytes of base64url")
		}
	}
	return nil
}

func validName(n string) error {
	switch {
	case n == "":
		return errors.New("empty file name")
	case len(n) > maxNameLen:
		return fmt.Errorf("file name of %d bytes (max %d)", len(n), maxNameLen)
	case n == "." || n == "..":
		return errors.New("file name is . or ..")
	case strings.ContainsAny(n, "\\\x00"):
		return errors.New("file name contains '\\' or NUL")
	}
	// A name may be a relative path ("photos/2024/a.jpg": a file sent from
	// a folder), never an absolute one or one that climbs: every
	// '/'-separated part is non-empty and not "." or "..". Receivers that
	// write to disk still flatten it (transfer.SafeName).
	for _, part := range strings.Split(n, "/") {
		if part == "" || part == "." || part == ".." {
			return errors.New("file name is not a relative path of named parts (empty, . or .. between '/')")
		}
	}
	return nil
}

func validFileKey(s string) bool {
	b, err := b64.DecodeString(s)
	return err == nil && len(b) == fileKeyLen
}

func validSHA256Hex(s string) bool {
	if len(s) != sha256HexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// validUUID reports whether s is a lower-case 8-4-4-4-12 hex UUID string.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isLowerHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// chunkCount64 is ChunkCount without the uint32 limit; 0 for invalid input.
func chunkCount64(size int64, chunkSize int) uint64 {
	if size < 0 || chunkSize < 1 {
		return 0
	}
	if size == 0 {
		return 1
	}
	cs := uint64(chunkSize)
	return (uint64(size)-1)/cs + 1
}

func chunkCount(size int64, chunkSize int) uint32 {
	n := chunkCount64(size, chunkSize)
	if n > math.MaxUint32 {
		return 0
	}
	return uint32(n)
}
