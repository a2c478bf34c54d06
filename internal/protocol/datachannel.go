package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Data-channel messages between two members (peer to peer, directly or
// through TURN). Chunks travel as the same ChunkUp frames the relay takes
// (first byte FrameVersion); the other messages start with one of these
// kinds, which can never be a frame version.
const (
	DCConfirm  = 0xC1 // [kind][32-byte key-confirmation tag]
	DCManifest = 0xC2 // [kind][file 16][chunks u32][sealed manifest envelope]
	DCProgress = 0xC3 // [kind][file 16][chunks received u32] receiver -> sender
	DCDone     = 0xC4 // [kind][file 16][status: 0 ok, 1 failed][reason, UTF-8]
	// Room library and swarm (protocol v4; swarm.go, docs/PROTOCOL.md).
	DCHave    = 0xC6 // [kind][file 16][flags u8][n u16][n x (lo u32, hi u32)]
	DCWant    = 0xC7 // [kind][file 16][any u16][n u16][n x index u32]
	DCHashReq = 0xC8 // [kind][file 16][piece u32]
	DCHashes  = 0xC9 // [kind][file 16][piece u32][32-byte hashes]
	DCCancel  = 0xCA // [kind][file 16]
)

// DCMaxMessage is the largest data-channel message either side sends or
// accepts (the SDP default max-message-size).
const DCMaxMessage = 64 << 10

// DCMessage is a parsed data-channel control message.
type DCMessage struct {
	Kind   byte
	Tag    []byte // DCConfirm
	File   [16]byte
	Chunks uint32 // DCManifest: count; DCProgress: received
	Sealed []byte // DCManifest: the sealed manifest envelope
	Failed bool   // DCDone
	Reason string // DCDone
	// Swarm messages (swarm.go).
	Flags   byte        // DCHave: HaveFull, HaveComplete
	Ranges  [][2]uint32 // DCHave: [lo, hi) chunk ranges
	Any     uint16      // DCWant: chunks of the holder's choice
	Indices []uint32    // DCWant: chunks asked for by index
	Piece   uint32      // DCHashReq, DCHashes
	Hashes  []byte      // DCHashes: the piece (aliases the input)
}

// AppendDC appends the wire form of m to dst.
func AppendDC(dst []byte, m *DCMessage) []byte {
	dst = append(dst, m.Kind)
	switch m.Kind {
	case DCConfirm:
		return append(dst, m.Tag...)
	case DCManifest:
		dst = append(dst, m.File[:]...)
		dst = binary.BigEndian.AppendUint32(dst, m.Chunks)
		return append(dst, m.Sealed...)
	case DCProgress:
		dst = append(dst, m.File[:]...)
		return binary.BigEndian.AppendUint32(dst, m.Chunks)
	case DCDone:
		dst = append(dst, m.File[:]...)
		status := byte(0)
		if m.Failed {
			status = 1
		}
		return append(append(dst, status), m.Reason...)
	}
	return appendSwarm(dst, m)
}

// ParseDC parses a data-channel control message from untrusted bytes. Sealed
// and Tag alias b.
func ParseDC(b []byte) (*DCMessage, error) {
	if len(b) == 0 || len(b) > DCMaxMessage {
		return nil, fmt.Errorf("data-channel message of %d bytes: %w", len(b), ErrFrame)
	}
	m := &DCMessage{Kind: b[0]}
	body := b[1:]
	switch m.Kind {
	case DCConfirm:
		if len(body) != 32 {
			return nil, fmt.Errorf("confirm tag of %d bytes: %w", len(body), ErrFrame)
		}
		m.Tag = body
		return m, nil
	case DCManifest, DCProgress:
		if len(body) < 20 {
			return nil, fmt.Errorf("short data-channel message: %w", ErrFrame)
		}
		copy(m.File[:], body)
		m.Chunks = binary.BigEndian.Uint32(body[16:20])
		if m.Chunks > MaxChunks || (m.Kind == DCManifest && m.Chunks == 0) {
			return nil, fmt.Errorf("chunk count %d: %w", m.Chunks, ErrFrame)
		}
		if m.Kind == DCProgress {
			if len(body) != 20 {
				return nil, fmt.Errorf("progress of %d bytes: %w", len(body), ErrFrame)
			}
			return m, nil
		}
		m.Sealed = body[20:]
		if len(m.Sealed) == 0 || len(m.Sealed) > MaxEnvelopeBytes {
			return nil, fmt.Errorf("manifest of %d bytes: %w", len(m.Sealed), ErrFrame)
		}
		return m, nil
	case DCDone:
		if len(body) < 17 || body[16] > 1 || len(body) > 17+1024 || !utf8.Valid(body[17:]) {
			return nil, fmt.Errorf("malformed done: %w", ErrFrame)
		}
		copy(m.File[:], body)
		m.Failed = body[16] == 1
		m.Reason = string(body[17:])
		return m, nil
	}
	return parseSwarm(m, body)
}
