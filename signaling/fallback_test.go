package signaling

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// hclient is an HTTP fallback session driven by hand.
type hclient struct {
	t     *testing.T
	e     *testEnv
	token string
	up    uint64 // frames posted
	ack   uint64 // frames received
	body  io.ReadCloser
}

// openHTTP opens a session; it fails the test unless the server answers 200.
func (e *testEnv) openHTTP(hdr http.Header) *hclient {
	e.t.Helper()
	resp := e.httpDo(http.MethodPost, "/h/open", hdr, nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("open: %s", resp.Status)
	}
	var open struct{ S string }
	if err := json.NewDecoder(resp.Body).Decode(&open); err != nil || len(open.S) != 32 {
		e.t.Fatalf("open answered %q, %v", open.S, err)
	}
	c := &hclient{t: e.t, e: e, token: open.S}
	e.t.Cleanup(func() {
		if c.body != nil {
			c.body.Close()
		}
	})
	return c
}

func (e *testEnv) httpDo(method, path string, hdr http.Header, body []byte) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// post sends frames numbered from seq and returns the status.
func (c *hclient) post(seq uint64, body []byte) int {
	c.t.Helper()
	resp := c.e.httpDo(http.MethodPost, fmt.Sprintf("/h/up?s=%s&seq=%d", c.token, seq), nil, body)
	defer resp.Body.Close()
	return resp.StatusCode
}

// send posts one message as the next frame.
func (c *hclient) send(m *protocol.Message) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if st := c.post(c.up+1, protocol.AppendHTTPFrame(nil, protocol.HTTPText, b)); st != http.StatusNoContent {
		c.t.Fatalf("post: %d", st)
	}
	c.up++
}

// get starts a down stream from ack and returns its status.
func (c *hclient) get(ack uint64) int {
	c.t.Helper()
	if c.body != nil {
		c.body.Close()
	}
	resp := c.e.httpDo(http.MethodGet, fmt.Sprintf("/h/down?s=%s&ack=%d", c.token, ack), nil, nil)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.body = nil
		return resp.StatusCode
	}
	c.body, c.ack = resp.Body, ack
	return resp.StatusCode
}

// next returns the next text or binary frame (pings skipped), re-polling
// when a stream ends; a close frame or an ended session is returned as
// op HTTPClose.
func (c *hclient) next() (byte, []byte) {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if c.body == nil {
			if st := c.get(c.ack); st != http.StatusOK {
				return protocol.HTTPClose, []byte(fmt.Sprint(st))
			}
		}
		op, data, err := protocol.ReadHTTPFrame(c.body)
		if err != nil {
			c.body.Close()
			c.body = nil
			continue
		}
		c.ack++
		if op != protocol.HTTPPing {
			return op, data
		}
	}
	c.t.Fatal("timed out waiting for a frame")
	return 0, nil
}

// expect returns the next message, which must be of type typ.
func (c *hclient) expect(typ string) *protocol.Message {
	c.t.Helper()
	op, data := c.next()
	if op != protocol.HTTPText {
		c.t.Fatalf("got frame %d %q, want a %s message", op, data, typ)
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Type != typ {
		c.t.Fatalf("got %s (%v), want %s", data, err, typ)
	}
	return m
}

func (e *testEnv) joinHTTP(rc roomCreds, id ident) *hclient {
	e.t.Helper()
	c := e.openHTTP(nil)
	c.send(joinMsg(rc, id))
	c.expect(protocol.TypeWelcome)
	return c
}

// TestHTTPJoinAndRelay: a member over HTTP and one over WebSocket share a
// room: presence and a chat flow both ways, and a retried POST is not
// taken twice.
func TestHTTPJoinAndRelay(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	h := e.joinHTTP(rc, newIdent())
	w := e.join(rc, newIdent())
	h.expect(protocol.TypePresence)
	msg := &protocol.Message{Type: protocol.TypeMsg, Data: randB64(40)}
	b, _ := json.Marshal(msg)
	frame := protocol.AppendHTTPFrame(nil, protocol.HTTPText, b)
	for range 2 { // the same POST twice: a retry after a lost answer
		if st := h.post(h.up+1, frame); st != http.StatusNoContent {
			t.Fatalf("post: %d", st)
		}
	}
	h.up++
	got := w.expect(protocol.TypeMsg)
	if got.Data != msg.Data {
		t.Fatalf("WebSocket member got %q, want %q", got.Data, msg.Data)
	}
	w.sync() // no second copy
	if st := h.post(h.up+2, frame); st != http.StatusConflict {
		t.Fatalf("post leaving a gap: %d, want 409", st)
	}
	w.send(&protocol.Message{Type: protocol.TypeMsg, Data: msg.Data})
	if m := h.expect(protocol.TypeMsg); m.Data != msg.Data {
		t.Fatalf("HTTP member got %q", m.Data)
	}
}

// TestHTTPResume: a down stream cut in the middle of a frame is asked for
// again from the last whole frame: every frame arrives once, in order; an
// ack past what was sent is refused.
func TestHTTPResume(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	h := e.joinHTTP(rc, newIdent())
	w := e.join(rc, newIdent())
	h.expect(protocol.TypePresence)
	h.body.Close()
	h.body = nil
	const n = 20
	for i := range n {
		w.send(&protocol.Message{Type: protocol.TypeMsg, Data: protocol.EncodeB64([]byte(fmt.Sprintf("message %02d", i)))})
	}
	for i := 0; i < n; {
		if st := h.get(h.ack); st != http.StatusOK {
			t.Fatalf("get: %d", st)
		}
		// Read one whole frame (not a ping) and half the next, then cut.
		op, data, err := protocol.ReadHTTPFrame(h.body)
		if err != nil {
			t.Fatal(err)
		}
		h.ack++
		if op == protocol.HTTPText {
			m, err := protocol.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := protocol.DecodeB64(m.Data)
			if want := fmt.Sprintf("message %02d", i); string(d) != want {
				t.Fatalf("frame %d: got %q, want %q", i, d, want)
			}
			i++
		}
		if i < n { // the next frame is there: cut inside it
			_, _ = io.ReadFull(h.body, make([]byte, 7))
		}
		h.body.Close()
		h.body = nil
	}
	if st := h.get(h.ack + 100); st != http.StatusConflict {
		t.Fatalf("ack past the last frame: %d, want 409", st)
	}
}

// TestHTTPLimits: an unknown session 404s, another origin is refused, a
// frame over the size limit ends the session (counted like a WebSocket's),
// and sessions count against the per-address cap.
func TestHTTPLimits(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxConnsPerAddr = 2 })
	for _, path := range []string{"/h/down?s=00&ack=0", "/h/up?s=00&seq=1"} {
		method := http.MethodGet
		if strings.HasPrefix(path, "/h/up") {
			method = http.MethodPost
		}
		resp := e.httpDo(method, path, nil, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %s, want 404", method, path, resp.Status)
		}
	}
	resp := e.httpDo(http.MethodPost, "/h/open", http.Header{"Origin": {"https://evil.example"}}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("open from another origin: %s, want 403", resp.Status)
	}

	rc := newCreds()
	h := e.joinHTTP(rc, newIdent())
	big := make([]byte, protocol.HTTPFrameHeader)
	big[0] = protocol.HTTPBinary
	binary.BigEndian.PutUint32(big[1:], protocol.MaxFrameBytes+1)
	big = append(big, make([]byte, protocol.MaxFrameBytes+1)...)
	if st := h.post(h.up+1, big); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize frame: %d, want 413", st)
	}
	e.waitGone(1)
	if n := e.limited(LimitFrameSize); n != 1 {
		t.Errorf("frame_size counted %d, want 1", n)
	}
	if op, data := h.next(); op != protocol.HTTPClose {
		t.Errorf("after an oversize frame the session sent %d %q, want its end", op, data)
	}

	// Per-address cap 2: a WebSocket and a session fill it; the next
	// session is refused in its stream; past twice the cap, at open.
	e.join(rc, newIdent())
	e.joinHTTP(rc, newIdent())
	over := e.openHTTP(nil)
	if m := over.expect(protocol.TypeError); m.Code != protocol.CodeTooMany {
		t.Errorf("third connection: %+v, want too_many", m)
	}
	if n := e.limited(LimitConnsPerAddr); n != 1 {
		t.Errorf("conns_per_addr counted %d, want 1", n)
	}
	e.openHTTP(nil) // 4 open: twice the cap
	resp = e.httpDo(http.MethodPost, "/h/open", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("open past twice the cap: %s, want 429", resp.Status)
	}
}

// TestHTTPSilentSessionEnds: a session that makes no request for the
// pong wait ends like a WebSocket that answers no ping.
func TestHTTPSilentSessionEnds(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) {
		c.PingInterval, c.PongWait = 50*time.Millisecond, 300*time.Millisecond
	})
	h := e.joinHTTP(newCreds(), newIdent())
	h.body.Close()
	h.body = nil
	e.waitGone(1)
	if n := e.limited(LimitPingTimeout); n != 1 {
		t.Fatalf("ping_timeout counted %d, want 1", n)
	}
}

func TestSessionAck(t *testing.T) {
	ss := newSession("t")
	for i := range 3 {
		if err := ss.WriteMessage(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ss.ack(4); !errors.Is(err, errBadAck) {
		t.Errorf("ack 4 of 3: %v", err)
	}
	if _, err := ss.ack(2); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.ack(0); !errors.Is(err, errBadAck) {
		t.Errorf("ack of a dropped frame: %v", err)
	}
	_ = ss.Close()
	if _, err := ss.ack(3); !errors.Is(err, errSessionClosed) {
		t.Errorf("closed and all acked: %v", err)
	}
}
