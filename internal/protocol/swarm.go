package protocol

import (
	"encoding/binary"
	"fmt"
)

// The room library and swarm (protocol v4, docs/PROTOCOL.md "Room library
// and swarm"): data-channel messages by which members tell each other which
// chunks they hold, ask for chunks, and pass the chunk-hash pieces that let
// a receiver check a chunk from any holder against the origin's manifest.

const (
	// HashesPerPiece is how many 32-byte chunk hashes make one hash piece
	// (64,000 bytes: one data-channel message with its header).
	HashesPerPiece = 2000
	// MaxHaveRanges bounds the ranges of one have message or signal.
	MaxHaveRanges = 1000
	// MaxWantIndices bounds the indices of one want message; a holder keeps
	// at most MaxOutstandingWants wants of one file from one link.
	MaxWantIndices      = 1024
	MaxOutstandingWants = 256
	// HistoryLength is how many recent chat messages a member keeps to give
	// a newcomer; LibraryAnnounce how many library entries it announces.
	HistoryLength   = 100
	LibraryAnnounce = 50
)

// Flags of a DCHave message.
const (
	HaveFull     = 1 << 0 // the ranges replace what was known of the author
	HaveComplete = 1 << 1 // the author holds every chunk
)

// PieceCount is the number of hash pieces of a file of chunks chunks.
func PieceCount(chunks uint32) int {
	return int((uint64(chunks) + HashesPerPiece - 1) / HashesPerPiece)
}

// PieceChunks returns the chunk range [lo, hi) whose hashes piece p holds.
func PieceChunks(p uint32, chunks uint32) (lo, hi uint32) {
	lo = min(p*HashesPerPiece, chunks)
	hi = min(lo+HashesPerPiece, chunks)
	return lo, hi
}

func appendSwarm(dst []byte, m *DCMessage) []byte {
	switch m.Kind {
	case DCHave:
		dst = append(append(dst, m.File[:]...), m.Flags)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Ranges)))
		for _, r := range m.Ranges {
			dst = binary.BigEndian.AppendUint32(dst, r[0])
			dst = binary.BigEndian.AppendUint32(dst, r[1])
		}
	case DCWant:
		dst = append(dst, m.File[:]...)
		dst = binary.BigEndian.AppendUint16(dst, m.Any)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Indices)))
		for _, i := range m.Indices {
			dst = binary.BigEndian.AppendUint32(dst, i)
		}
	case DCHashReq, DCHashes:
		dst = binary.BigEndian.AppendUint32(append(dst, m.File[:]...), m.Piece)
		dst = append(dst, m.Hashes...)
	case DCCancel:
		dst = append(dst, m.File[:]...)
	}
	return dst
}

// parseSwarm parses the body of a swarm message of kind m.Kind.
func parseSwarm(m *DCMessage, body []byte) (*DCMessage, error) {
	if len(body) < 16 {
		return nil, fmt.Errorf("data-channel message kind %#x of %d bytes: %w", m.Kind, len(body)+1, ErrFrame)
	}
	copy(m.File[:], body)
	rest := body[16:]
	switch m.Kind {
	case DCHave:
		return parseHave(m, rest)
	case DCWant:
		return parseWant(m, rest)
	case DCHashReq, DCHashes:
		if len(rest) < 4 {
			return nil, fmt.Errorf("short hash message: %w", ErrFrame)
		}
		m.Piece = binary.BigEndian.Uint32(rest)
		if m.Piece >= MaxChunks/HashesPerPiece+1 {
			return nil, fmt.Errorf("hash piece %d: %w", m.Piece, ErrFrame)
		}
		h := rest[4:]
		switch {
		case m.Kind == DCHashReq && len(h) != 0:
			return nil, fmt.Errorf("hash request of %d bytes: %w", len(body)+1, ErrFrame)
		case m.Kind == DCHashes && (len(h) == 0 || len(h)%32 != 0 || len(h) > 32*HashesPerPiece):
			return nil, fmt.Errorf("hash piece of %d bytes: %w", len(h), ErrFrame)
		}
		if m.Kind == DCHashes {
			m.Hashes = h
		}
		return m, nil
	case DCCancel:
		if len(rest) != 0 {
			return nil, fmt.Errorf("cancel of %d bytes: %w", len(body)+1, ErrFrame)
		}
		return m, nil
	}
	return nil, fmt.Errorf("data-channel message kind %#x: %w", m.Kind, ErrFrame)
}

func parseHave(m *DCMessage, rest []byte) (*DCMessage, error) {
	if len(rest) < 3 {
		return nil, fmt.Errorf("short have: %w", ErrFrame)
	}
	m.Flags = rest[0]
	n := int(binary.BigEndian.Uint16(rest[1:3]))
	rest = rest[3:]
	if m.Flags&^(HaveFull|HaveComplete) != 0 || n > MaxHaveRanges || len(rest) != 8*n {
		return nil, fmt.Errorf("malformed have (%d ranges, flags %#x): %w", n, m.Flags, ErrFrame)
	}
	m.Ranges = make([][2]uint32, n)
	for i := range m.Ranges {
		lo, hi := binary.BigEndian.Uint32(rest[8*i:]), binary.BigEndian.Uint32(rest[8*i+4:])
		if lo >= hi || hi > MaxChunks {
			return nil, fmt.Errorf("have range [%d,%d): %w", lo, hi, ErrFrame)
		}
		m.Ranges[i] = [2]uint32{lo, hi}
	}
	return m, nil
}

func parseWant(m *DCMessage, rest []byte) (*DCMessage, error) {
	if len(rest) < 4 {
		return nil, fmt.Errorf("short want: %w", ErrFrame)
	}
	m.Any = binary.BigEndian.Uint16(rest)
	n := int(binary.BigEndian.Uint16(rest[2:4]))
	rest = rest[4:]
	if n > MaxWantIndices || len(rest) != 4*n || m.Any > MaxOutstandingWants {
		return nil, fmt.Errorf("malformed want (%d indices, any %d): %w", n, m.Any, ErrFrame)
	}
	m.Indices = make([]uint32, n)
	for i := range m.Indices {
		m.Indices[i] = binary.BigEndian.Uint32(rest[4*i:])
		if m.Indices[i] >= MaxChunks {
			return nil, fmt.Errorf("want index %d: %w", m.Indices[i], ErrFrame)
		}
	}
	return m, nil
}
