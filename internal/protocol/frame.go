package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Binary frame kinds (byte 1 of every binary WebSocket message; byte 0 is
// FrameVersion).
const (
	FrameVersion   = 1
	FrameChunkUp   = 1 // client -> server: a sealed chunk to store in the relay
	FrameChunkDown = 2 // server -> client: a stored chunk, with its item id and sender
)

// Header sizes.
const (
	ChunkUpHeader   = 2 + 16 + 4 + 4 + 1          // version, kind, file, index, count, flags
	ChunkDownHeader = 2 + 8 + 16 + 16 + 4 + 4 + 1 // version, kind, item, sender, file, index, count, flags
	flagFinal       = 1
)

// ErrFrame is wrapped by every binary frame parse error.
var ErrFrame = errors.New("invalid frame")

// Chunk is the routing part of a sealed chunk frame: which file, which index
// out of how many, and whether it is the last one. Every field is bound into
// the chunk's AEAD additional data (internal/crypto), so a relay that changes
// any of them makes the chunk fail to open.
type Chunk struct {
	File   [16]byte
	Index  uint32
	Count  uint32
	Final  bool
	Sealed []byte
}

// ChunkDown is a chunk as delivered by the server: the stored chunk plus the
// relay item id (for ack) and the member that uploaded it.
type ChunkDown struct {
	Item   uint64
	Sender [16]byte
	Chunk
}

func (c *Chunk) validate() error {
	switch {
	case c.Count == 0 || c.Count > MaxChunks:
		return fmt.Errorf("chunk count %d out of range: %w", c.Count, ErrFrame)
	case c.Index >= c.Count:
		return fmt.Errorf("chunk index %d >= count %d: %w", c.Index, c.Count, ErrFrame)
	case c.Final != (c.Index == c.Count-1):
		return fmt.Errorf("final flag on chunk %d of %d: %w", c.Index, c.Count, ErrFrame)
	case len(c.Sealed) < 16 || len(c.Sealed) > MaxSealedChunk:
		return fmt.Errorf("sealed chunk of %d bytes: %w", len(c.Sealed), ErrFrame)
	}
	return nil
}

func (c *Chunk) putTail(b []byte) {
	copy(b[0:16], c.File[:])
	binary.BigEndian.PutUint32(b[16:20], c.Index)
	binary.BigEndian.PutUint32(b[20:24], c.Count)
	if c.Final {
		b[24] = flagFinal
	}
}

func parseTail(b []byte) (Chunk, error) {
	var c Chunk
	copy(c.File[:], b[0:16])
	c.Index = binary.BigEndian.Uint32(b[16:20])
	c.Count = binary.BigEndian.Uint32(b[20:24])
	switch b[24] {
	case 0:
	case flagFinal:
		c.Final = true
	default:
		return c, fmt.Errorf("unknown flags %#x: %w", b[24], ErrFrame)
	}
	return c, nil
}

// AppendUp appends the ChunkUp frame for c to dst.
func (c *Chunk) AppendUp(dst []byte) []byte {
	var h [ChunkUpHeader]byte
	h[0], h[1] = FrameVersion, FrameChunkUp
	c.putTail(h[2:])
	return append(append(dst, h[:]...), c.Sealed...)
}

// DownHeader returns the ChunkDown header for d; the sealed bytes follow it
// on the wire (so a server can write both without copying the chunk).
func (d *ChunkDown) DownHeader() []byte {
	h := make([]byte, ChunkDownHeader)
	h[0], h[1] = FrameVersion, FrameChunkDown
	binary.BigEndian.PutUint64(h[2:10], d.Item)
	copy(h[10:26], d.Sender[:])
	d.putTail(h[26:])
	return h
}

// FrameKind returns the kind byte of a binary frame, checking its version.
func FrameKind(b []byte) (byte, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("frame of %d bytes: %w", len(b), ErrFrame)
	}
	if b[0] != FrameVersion {
		return 0, fmt.Errorf("frame version %d: %w", b[0], ErrFrame)
	}
	return b[1], nil
}

// ParseChunkUp parses and validates a ChunkUp frame. Sealed aliases b.
func ParseChunkUp(b []byte) (Chunk, error) {
	if err := checkFrame(b, FrameChunkUp, ChunkUpHeader); err != nil {
		return Chunk{}, err
	}
	c, err := parseTail(b[2:ChunkUpHeader])
	if err != nil {
		return c, err
	}
	c.Sealed = b[ChunkUpHeader:]
	return c, c.validate()
}

// ParseChunkDown parses and validates a ChunkDown frame. Sealed aliases b.
func ParseChunkDown(b []byte) (ChunkDown, error) {
	if err := checkFrame(b, FrameChunkDown, ChunkDownHeader); err != nil {
		return ChunkDown{}, err
	}
	var d ChunkDown
	d.Item = binary.BigEndian.Uint64(b[2:10])
	copy(d.Sender[:], b[10:26])
	c, err := parseTail(b[26:ChunkDownHeader])
	if err != nil {
		return d, err
	}
	c.Sealed = b[ChunkDownHeader:]
	d.Chunk = c
	if d.Item == 0 {
		return d, fmt.Errorf("item id 0: %w", ErrFrame)
	}
	return d, c.validate()
}

func checkFrame(b []byte, kind byte, header int) error {
	k, err := FrameKind(b)
	if err != nil {
		return err
	}
	if k != kind {
		return fmt.Errorf("frame kind %d, want %d: %w", k, kind, ErrFrame)
	}
	if len(b) < header || len(b) > MaxFrameBytes {
		return fmt.Errorf("frame of %d bytes: %w", len(b), ErrFrame)
	}
	return nil
}
