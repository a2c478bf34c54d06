package signaling

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// HTTP fallback sessions (PROTOCOL.md "HTTP fallback").
const (
	downBuffer    = 2 << 20          // unacked bytes a session holds for its client; writes wait beyond
	downPerGET    = 1 << 20          // a down stream ends after this many bytes...
	downHold      = 25 * time.Second // ...or this long, so buffering proxies deliver
	sessionLinger = 10 * time.Second // a closed session answers its last GETs this long
)

var (
	errSessionClosed = errors.New("HTTP session closed")
	errSessionGen    = errors.New("a newer GET took over the down stream")
)

// downFrame is one frame owed to the client, numbered from 1.
type downFrame struct {
	seq  uint64
	wire []byte // header and data
}

// upFrame is one frame from the client, handed to the reader.
type upFrame struct {
	op   byte
	data []byte
}

// session is an HTTP fallback connection as a wire: the conn's writer
// queues frames that GET /h/down streams (kept until acked), and POST
// /h/up hands frames to the conn's reader one at a time (the POST is
// answered once all are taken: back-pressure).
type session struct {
	token  string
	in     chan upFrame  // unbuffered: POST -> reader
	done   chan struct{} // closed by Close
	upMu   sync.Mutex    // one POST at a time; guards upNext
	upNext uint64        // seq of the next new frame from the client

	mu       sync.Mutex
	wake     chan struct{} // closed and replaced when down, gen, closed or the write deadline change
	readWake chan struct{} // closed and replaced when the read deadline or readErr change
	down     []downFrame   // unacked, oldest first
	downLen  int           // bytes in down
	last     uint64        // seq of the last frame queued
	gen      uint64        // GETs so far: only the newest streams
	closed   bool
	readDL   time.Time
	writeDL  time.Time
	readErr  error // sticky: the client broke a limit
	pong     func(string) error
}

func newSession(token string) *session {
	return &session{token: token, in: make(chan upFrame), done: make(chan struct{}), wake: make(chan struct{}), readWake: make(chan struct{}), upNext: 1}
}

// changedLocked wakes everything waiting on the session.
func (ss *session) changedLocked() {
	close(ss.wake)
	ss.wake = make(chan struct{})
}

// touch records a request of the client: it is alive.
func (ss *session) touch() {
	ss.mu.Lock()
	h := ss.pong
	ss.mu.Unlock()
	if h != nil {
		_ = h("")
	}
}

// NextReader waits for the next text or binary frame from the client.
func (ss *session) NextReader() (int, io.Reader, error) {
	for {
		ss.mu.Lock()
		wake, dl, err := ss.readWake, ss.readDL, ss.readErr
		ss.mu.Unlock()
		if err != nil {
			return 0, nil, err
		}
		timeout, stop, expired := protocol.Deadline(dl)
		if expired {
			return 0, nil, protocol.ErrDeadline
		}
		var f upFrame
		got := false
		select {
		case f = <-ss.in:
			got = true
		case <-ss.done:
			err = net.ErrClosed
		case <-timeout:
			err = protocol.ErrDeadline
		case <-wake:
		}
		stop()
		switch {
		case got && f.op == protocol.HTTPClose:
			return 0, nil, closeError(f.data)
		case got:
			return int(f.op), bytes.NewReader(f.data), nil
		case err != nil:
			return 0, nil, err
		}
	}
}

// closeError reads a close frame's data as WebSocket's.
func closeError(data []byte) error {
	code, text := protocol.ParseHTTPClose(data)
	return &websocket.CloseError{Code: code, Text: text}
}

// SetReadLimit does nothing: protocol.ReadHTTPFrame refuses a frame over
// protocol.MaxFrameBytes, the limit a conn sets.
func (ss *session) SetReadLimit(int64) {}

func (ss *session) SetReadDeadline(t time.Time) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.readDL = t
	close(ss.readWake)
	ss.readWake = make(chan struct{})
	return nil
}

func (ss *session) SetWriteDeadline(t time.Time) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.writeDL = t
	ss.changedLocked()
	return nil
}

func (ss *session) interrupt(t time.Time) { _ = ss.SetWriteDeadline(t) }

func (ss *session) SetPongHandler(h func(string) error) {
	ss.mu.Lock()
	ss.pong = h
	ss.mu.Unlock()
}

// fail ends reading with err (a limit the client broke).
func (ss *session) fail(err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.readErr == nil {
		ss.readErr = err
		close(ss.readWake)
		ss.readWake = make(chan struct{})
	}
}

// WriteMessage queues a text or binary frame, waiting while the client
// holds more than downBuffer unacked bytes (until the write deadline).
func (ss *session) WriteMessage(mt int, data []byte) error {
	return ss.queue(byte(mt), data, true)
}

// WriteControl queues a ping or close frame (a pong is never sent).
func (ss *session) WriteControl(mt int, data []byte, _ time.Time) error {
	if mt == websocket.PongMessage {
		return nil
	}
	return ss.queue(byte(mt), data, false)
}

func (ss *session) queue(op byte, data []byte, wait bool) error {
	return ss.queueWire(protocol.AppendHTTPFrame(nil, op, data), wait)
}

// queueWire queues an encoded frame.
func (ss *session) queueWire(f []byte, wait bool) error {
	size := len(f)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for wait && ss.downLen > 0 && ss.downLen+size > downBuffer {
		if err := ss.waitWriteLocked(); err != nil {
			return err
		}
	}
	if ss.closed {
		return errSessionClosed
	}
	if !ss.writeDL.IsZero() && !time.Now().Before(ss.writeDL) {
		return protocol.ErrDeadline
	}
	ss.last++
	ss.down = append(ss.down, downFrame{seq: ss.last, wire: f})
	ss.downLen += size
	ss.changedLocked()
	return nil
}

// waitWriteLocked waits (unlocking ss.mu) for a change or the write deadline.
func (ss *session) waitWriteLocked() error {
	if ss.closed {
		return errSessionClosed
	}
	timeout, stop, expired := protocol.Deadline(ss.writeDL)
	if expired {
		return protocol.ErrDeadline
	}
	defer stop()
	wake := ss.wake
	ss.mu.Unlock()
	defer ss.mu.Lock()
	select {
	case <-wake:
	case <-timeout:
	}
	return nil
}

// NextWriter returns a writer that queues one frame when closed.
func (ss *session) NextWriter(mt int) (io.WriteCloser, error) {
	return &frameWriter{ss: ss, buf: protocol.AppendHTTPFrame(nil, byte(mt), nil)}, nil
}

// frameWriter builds a frame in place: header, then data.
type frameWriter struct {
	ss  *session
	buf []byte
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *frameWriter) Close() error {
	binary.BigEndian.PutUint32(w.buf[1:protocol.HTTPFrameHeader], uint32(len(w.buf)-protocol.HTTPFrameHeader))
	return w.ss.queueWire(w.buf, true)
}

// Close ends the session: no more frames are queued; what is queued can
// still be fetched (sessionLinger).
func (ss *session) Close() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.closed {
		ss.closed = true
		close(ss.done)
		ss.changedLocked()
	}
	return nil
}

// ack drops the frames up to seq and makes the caller the down stream
// (ending an older one); it returns the stream's generation.
func (ss *session) ack(seq uint64) (uint64, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	first := ss.last + 1 - uint64(len(ss.down))
	if seq > ss.last || seq+1 < first {
		return 0, errBadAck
	}
	for len(ss.down) > 0 && ss.down[0].seq <= seq {
		ss.downLen -= len(ss.down[0].wire)
		ss.down[0] = downFrame{}
		ss.down = ss.down[1:]
	}
	if ss.closed && len(ss.down) == 0 {
		return 0, errSessionClosed
	}
	ss.gen++
	ss.changedLocked()
	return ss.gen, nil
}

var errBadAck = errors.New("ack out of range")

// nextDown waits for frames after seq for the stream of generation gen
// until ctx ends or the stream's time is up; end says nothing more will
// come (the session is closed and everything was handed out).
func (ss *session) nextDown(ctx context.Context, gen, seq uint64, until <-chan time.Time) (frames [][]byte, end bool, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for {
		if ss.gen != gen {
			return nil, true, errSessionGen
		}
		for _, f := range ss.down {
			if f.seq > seq {
				frames = append(frames, f.wire)
			}
		}
		if len(frames) > 0 || ss.closed {
			return frames, ss.closed, nil
		}
		wake := ss.wake
		ss.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			ss.mu.Lock()
			return nil, true, ctx.Err()
		case <-until:
			ss.mu.Lock()
			return nil, true, nil
		}
		ss.mu.Lock()
	}
}
