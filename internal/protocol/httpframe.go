package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// HTTP fallback framing (PROTOCOL.md "HTTP fallback"): when WebSocket fails,
// the same frames travel in HTTP bodies, each as a 1-byte opcode (the
// WebSocket opcode), a 4-byte big-endian length and the data.
const (
	HTTPText   byte = 1  // a JSON message
	HTTPBinary byte = 2  // a binary relay frame
	HTTPClose  byte = 8  // 2-byte close code, then the reason
	HTTPPing   byte = 9  // keep-alive (server to client)
	HTTPPong   byte = 10 // keep-alive (client to server)

	HTTPFrameHeader = 5
	// MaxHTTPControl bounds a close, ping or pong frame's data (as WebSocket does).
	MaxHTTPControl = 125
	// MaxHTTPUpBody bounds one POST /h/up body (a client batches frames up to it).
	MaxHTTPUpBody = 1 << 20
)

// Errors reading HTTP fallback frames.
var (
	ErrHTTPFrame         = errors.New("malformed HTTP fallback frame")
	ErrHTTPFrameTooLarge = errors.New("HTTP fallback frame over the size limit")
)

// AppendHTTPFrame appends one frame to dst.
func AppendHTTPFrame(dst []byte, op byte, data []byte) []byte {
	dst = append(dst, op, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(data)))
	return append(dst, data...)
}

// ReadHTTPFrame reads one frame from r. It returns io.EOF only at a frame
// boundary, io.ErrUnexpectedEOF inside a frame, ErrHTTPFrameTooLarge for a
// text or binary frame over MaxFrameBytes (or a control frame over
// MaxHTTPControl), and ErrHTTPFrame for an unknown opcode.
func ReadHTTPFrame(r io.Reader) (op byte, data []byte, err error) {
	var h [HTTPFrameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	op, n := h[0], binary.BigEndian.Uint32(h[1:])
	limit := uint32(MaxFrameBytes)
	switch op {
	case HTTPText, HTTPBinary:
	case HTTPClose, HTTPPing, HTTPPong:
		limit = MaxHTTPControl
	default:
		return 0, nil, fmt.Errorf("%w: opcode %d", ErrHTTPFrame, op)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrHTTPFrameTooLarge, n, limit)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return op, data, nil
}

// ParseHTTPClose reads a close frame's data: the close code (1005, "no
// status", when absent) and the reason.
func ParseHTTPClose(data []byte) (code int, reason string) {
	if len(data) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(data)), string(data[2:])
}

// ErrDeadline is an HTTP fallback deadline passing, as a net.Error whose
// Timeout is true (what a WebSocket's deadline gives).
var ErrDeadline net.Error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string   { return "i/o timeout" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }

// Deadline returns a channel that fires at t (nil for a zero t: never) and
// a function that stops its timer; expired says t has already passed.
func Deadline(t time.Time) (c <-chan time.Time, stop func(), expired bool) {
	if t.IsZero() {
		return nil, func() {}, false
	}
	d := time.Until(t)
	if d <= 0 {
		return nil, func() {}, true
	}
	timer := time.NewTimer(d)
	return timer.C, func() { timer.Stop() }, false
}
