package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// HTTP fallback (PROTOCOL.md "HTTP fallback"): when the WebSocket upgrade
// is refused, the same frames go over plain HTTP requests.
const (
	upQueue     = 1 << 20 // bytes queued for upload before a write waits
	downRetries = 5       // a down stream that fails this often in a row ends the session
	retryPause  = 200 * time.Millisecond
)

// Transports of the room's connection.
const (
	WireWebSocket = "websocket"
	WireHTTP      = "http"
)

// httpWire is an HTTP fallback session as a wire. One goroutine streams
// GET /h/down and hands frames to NextReader one at a time (so a slow
// reader slows the stream: back-pressure); another POSTs queued frames to
// /h/up in batches, in order, retrying a batch that failed in transit.
type httpWire struct {
	hc    *http.Client
	base  string // http(s)://host
	token string
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	in    chan httpFrame // down loop -> NextReader

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when the queue, an error or a deadline changes
	queue   [][]byte      // encoded frames not yet taken by the server
	queued  int           // bytes in queue
	upSeq   uint64        // number of queue[0]
	upErr   error         // sticky: the upload failed
	downErr error         // sticky: the down stream ended
	readDL  time.Time
	writeDL time.Time
	pingH   func(string) error
	closed  bool
}

type httpFrame struct {
	op   byte
	data []byte
}

// httpBase turns the WebSocket URL into the server's HTTP base URL.
func httpBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", fmt.Errorf("server URL: %w", err)
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	case "ws":
		u.Scheme = "http"
	}
	u.Path = strings.TrimSuffix(u.Path, "/ws")
	return strings.TrimRight(u.String(), "/"), nil
}

// httpClient builds an HTTP client that reaches the server as d would
// (its TLS settings, proxy and dialer).
func httpClient(d *websocket.Dialer) *http.Client {
	tr := &http.Transport{
		Proxy:               d.Proxy,
		DialContext:         d.NetDialContext,
		TLSClientConfig:     d.TLSClientConfig.Clone(),
		TLSHandshakeTimeout: d.HandshakeTimeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{Transport: tr}
}

// dialHTTP opens an HTTP fallback session (POST /h/open).
func dialHTTP(ctx context.Context, wsURL string, d *websocket.Dialer) (*httpWire, error) {
	base, err := httpBase(wsURL)
	if err != nil {
		return nil, err
	}
	hc := httpClient(d)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/h/open", nil)
	if err != nil {
		return nil, fmt.Errorf("http fallback: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http fallback: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http fallback: server answered %s: %s", resp.Status, readShort(resp.Body))
	}
	var open struct {
		S string `json:"s"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1024)).Decode(&open); err != nil || open.S == "" {
		return nil, fmt.Errorf("http fallback: bad answer to open: %v", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	w := &httpWire{hc: hc, base: base, token: open.S, ctx: wctx, stop: stop,
		in: make(chan httpFrame), changed: make(chan struct{}), upSeq: 1}
	w.wg.Add(2)
	go w.downLoop()
	go w.upLoop()
	return w, nil
}

// readShort reads the start of an error answer, for a message.
func readShort(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 256))
	return strings.TrimSpace(string(b))
}

func (w *httpWire) url(path string, n uint64, key string) string {
	return w.base + path + "?s=" + url.QueryEscape(w.token) + "&" + key + "=" + strconv.FormatUint(n, 10)
}

// changedLocked wakes every waiter.
func (w *httpWire) changedLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// downLoop streams frames until the session ends; a stream cut short is
// asked for again from the last whole frame received (ack), so no frame
// is lost or repeated.
func (w *httpWire) downLoop() {
	defer w.wg.Done()
	var ack uint64
	fails := 0
	for w.ctx.Err() == nil {
		n, answered, err := w.stream(ack)
		ack += n
		switch {
		case err == nil || answered:
			fails = 0
			continue
		case errors.Is(err, errSessionEnded):
		case fails < downRetries:
			fails++
			select {
			case <-w.ctx.Done():
			case <-time.After(retryPause * time.Duration(fails)):
			}
			continue
		}
		w.failDown(err)
		return
	}
}

var errSessionEnded = errors.New("the server ended the session")

// stream runs one GET /h/down and returns how many whole frames it handed
// on and whether the server answered 200; a nil error means the server
// ended the stream (come back).
func (w *httpWire) stream(ack uint64) (uint64, bool, error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, w.url("/h/down", ack, "ack"), nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusGone:
		return 0, false, fmt.Errorf("%w (%s)", errSessionEnded, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return 0, false, fmt.Errorf("down: server answered %s: %s", resp.Status, readShort(resp.Body))
	}
	var n uint64
	for {
		op, data, err := protocol.ReadHTTPFrame(resp.Body)
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, true, fmt.Errorf("down: %w", err)
		}
		select {
		case w.in <- httpFrame{op: op, data: data}:
			n++
		case <-w.ctx.Done():
			return n, true, w.ctx.Err()
		}
		if op == protocol.HTTPClose {
			_ = w.WriteControl(websocket.CloseMessage, data, time.Now().Add(time.Second))
			return n, true, fmt.Errorf("%w (close frame)", errSessionEnded)
		}
	}
}

func (w *httpWire) failDown(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.downErr == nil {
		w.downErr = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: err.Error()}
		w.changedLocked()
	}
}

// NextReader returns the next text or binary frame; pings go to the ping
// handler and a close frame ends reading, as with a WebSocket.
func (w *httpWire) NextReader() (int, io.Reader, error) {
	for {
		w.mu.Lock()
		changed, dl, err, ping := w.changed, w.readDL, w.downErr, w.pingH
		if err == nil && w.closed {
			err = net.ErrClosed
		}
		w.mu.Unlock()
		if err != nil {
			return 0, nil, err
		}
		timeout, stop, expired := protocol.Deadline(dl)
		if expired {
			return 0, nil, protocol.ErrDeadline
		}
		var f httpFrame
		got := false
		select {
		case f = <-w.in:
			got = true
		case <-timeout:
			err = protocol.ErrDeadline
		case <-changed:
			err = nil
		}
		stop()
		switch {
		case got && f.op == protocol.HTTPPing:
			if ping != nil {
				if err := ping(string(f.data)); err != nil {
					return 0, nil, err
				}
			}
		case got && f.op == protocol.HTTPClose:
			return 0, nil, closeFrameError(f.data)
		case got && f.op == protocol.HTTPPong:
		case got:
			return int(f.op), bytes.NewReader(f.data), nil
		case err != nil:
			return 0, nil, err
		}
	}
}

func closeFrameError(data []byte) error {
	code, text := protocol.ParseHTTPClose(data)
	return &websocket.CloseError{Code: code, Text: text}
}

func (w *httpWire) ReadMessage() (int, []byte, error) {
	mt, r, err := w.NextReader()
	if err != nil {
		return mt, nil, err
	}
	b, err := io.ReadAll(r)
	return mt, b, err
}

// WriteMessage queues a frame for upload, waiting (until the write
// deadline) while upQueue bytes are already queued.
func (w *httpWire) WriteMessage(mt int, data []byte) error {
	return w.enqueue(protocol.AppendHTTPFrame(nil, byte(mt), data))
}

func (w *httpWire) enqueue(f []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.upErr != nil:
			return w.upErr
		case w.closed:
			return net.ErrClosed
		case w.queued == 0 || w.queued+len(f) <= upQueue:
			w.queue = append(w.queue, f)
			w.queued += len(f)
			w.changedLocked()
			return nil
		}
		if err := w.waitLocked(w.writeDL); err != nil {
			return err
		}
	}
}

// waitLocked waits (unlocking w.mu) for a change or the deadline.
func (w *httpWire) waitLocked(dl time.Time) error {
	timeout, stop, expired := protocol.Deadline(dl)
	if expired {
		return protocol.ErrDeadline
	}
	defer stop()
	changed := w.changed
	w.mu.Unlock()
	defer w.mu.Lock()
	select {
	case <-changed:
	case <-timeout:
	case <-w.ctx.Done():
	}
	return nil
}

// WriteControl sends a close frame (and waits, until deadline, for it to be
// taken); pings and pongs are not needed: every request shows the server
// the client is alive.
func (w *httpWire) WriteControl(mt int, data []byte, deadline time.Time) error {
	if mt != websocket.CloseMessage {
		return nil
	}
	if err := w.enqueue(protocol.AppendHTTPFrame(nil, protocol.HTTPClose, data)); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.queued > 0 && w.upErr == nil && w.ctx.Err() == nil {
		if err := w.waitLocked(deadline); err != nil {
			return err
		}
	}
	return w.upErr
}

// upLoop POSTs what is queued, in order, in bodies of at most
// protocol.MaxHTTPUpBody.
func (w *httpWire) upLoop() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && w.ctx.Err() == nil {
			_ = w.waitLocked(time.Time{})
		}
		if w.ctx.Err() != nil {
			w.mu.Unlock()
			return
		}
		seq, batch := w.upSeq, w.batchLocked()
		w.mu.Unlock()
		err := w.post(seq, batch)
		w.mu.Lock()
		if err != nil {
			w.upErr = err
			if w.downErr == nil { // the reader ends too, as on a broken WebSocket
				w.downErr = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: err.Error()}
			}
		} else {
			for range batch {
				w.queued -= len(w.queue[0])
				w.queue[0] = nil
				w.queue = w.queue[1:]
			}
			w.upSeq += uint64(len(batch))
		}
		w.changedLocked()
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// batchLocked returns the first queued frames that fit in one body.
func (w *httpWire) batchLocked() [][]byte {
	n, size := 0, 0
	for n < len(w.queue) && (n == 0 || size+len(w.queue[n]) <= protocol.MaxHTTPUpBody) {
		size += len(w.queue[n])
		n++
	}
	return w.queue[:n:n]
}

// post sends one batch, again after a failure in transit (the server skips
// frames it already took).
func (w *httpWire) post(seq uint64, batch [][]byte) error {
	var err error
	for try := 0; try <= downRetries; try++ {
		if try > 0 {
			select {
			case <-w.ctx.Done():
				return w.ctx.Err()
			case <-time.After(retryPause * time.Duration(try)):
			}
		}
		var refused bool
		if refused, err = w.postOnce(seq, batch); err == nil || refused {
			return err
		}
	}
	return err
}

func (w *httpWire) postOnce(seq uint64, batch [][]byte) (refused bool, err error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url("/h/up", seq, "seq"), bytes.NewReader(bytes.Join(batch, nil)))
	if err != nil {
		return true, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := w.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("up: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	return resp.StatusCode/100 == 4, fmt.Errorf("up: server answered %s: %s", resp.Status, readShort(resp.Body))
}

func (w *httpWire) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.readDL = t
	w.changedLocked()
	return nil
}

func (w *httpWire) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeDL = t
	return nil
}

// SetReadLimit does nothing: protocol.ReadHTTPFrame refuses frames over
// protocol.MaxFrameBytes.
func (w *httpWire) SetReadLimit(int64) {}

// SetPongHandler does nothing: the server sends no pongs.
func (w *httpWire) SetPongHandler(func(string) error) {}

func (w *httpWire) SetPingHandler(h func(string) error) {
	w.mu.Lock()
	w.pingH = h
	w.mu.Unlock()
}

// Close stops both loops (a request in flight is cancelled).
func (w *httpWire) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.changedLocked()
	w.mu.Unlock()
	w.stop()
	w.wg.Wait()
	w.hc.CloseIdleConnections()
	return nil
}
