package signaling

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

const waitLimit = 10 * time.Second // how long a test waits for an expected frame

// fakeClock is the injectable clock shared by the server and the store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is a server on an httptest listener with a real store.
type testEnv struct {
	t     *testing.T
	clock *fakeClock
	st    *store.Store
	srv   *Server
	ts    *httptest.Server
	gone  chan struct{} // one value per connection cleaned up
}

type envOpt func(*Config, *store.Config)

func newEnv(t *testing.T, opts ...envOpt) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: &fakeClock{t: time.Unix(1_700_000_000, 0)}, gone: make(chan struct{}, 1024)}
	cfg := Config{Now: e.clock.Now, Logger: testLogger()}
	for _, o := range opts {
		o(&cfg, &cfg.Relay)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := srv.store
	srv.onDisconnected(func() {
		select {
		case e.gone <- struct{}{}:
		default:
		}
	})
	e.st, e.srv, e.ts = st, srv, httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		_ = srv.Close()
		e.ts.Close()
	})
	return e
}

func testLogger() *slog.Logger {
	if os.Getenv("SIGNALING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *testEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.ts.URL, "http") + "/ws" }

// waitGone waits until n more connections have been cleaned up.
func (e *testEnv) waitGone(n int) {
	e.t.Helper()
	for range n {
		select {
		case <-e.gone:
		case <-time.After(waitLimit):
			e.t.Fatal("timed out waiting for a connection to be cleaned up")
		}
	}
}

// roomCreds are what a client derives from a room secret and sends.
type roomCreds struct{ room, verifier string }

func newCreds() roomCreds {
	return roomCreds{room: randB64(protocol.RoomIDLen), verifier: randB64(protocol.VerifierLen)}
}

// ident is a member id with its announcement (random: the server never
// checks the MAC).
type ident struct{ member, pub, mac string }

func newIdent() ident {
	return ident{member: uuid.NewString(), pub: randB64(protocol.PubLen), mac: randB64(protocol.MACLen)}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randB64(n int) string { return protocol.EncodeB64(randBytes(n)) }

// frame is one message read by a client's reader goroutine.
type frame struct {
	binary bool
	data   []byte
	err    error
}

// tclient is a test client: a reader goroutine feeds in.
type tclient struct {
	t       *testing.T
	ws      *websocket.Conn
	id      ident
	in      chan frame
	done    chan struct{}
	welcome *protocol.Message
}

func (e *testEnv) dial(hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.DefaultDialer.Dial(e.wsURL(), hdr)
}

// connect opens a WebSocket and starts its reader.
func (e *testEnv) connect() *tclient {
	e.t.Helper()
	ws, _, err := e.dial(nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return startClient(e.t, ws)
}

func startClient(t *testing.T, ws *websocket.Conn) *tclient {
	c := &tclient{t: t, ws: ws, in: make(chan frame, 1024), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

func (c *tclient) readLoop() {
	defer close(c.done)
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.in <- frame{err: err}
			return
		}
		c.in <- frame{binary: mt == websocket.BinaryMessage, data: data}
	}
}

// close closes the socket and waits for the reader goroutine.
func (c *tclient) close() {
	_ = c.ws.Close()
	<-c.done
}

// join connects as id to rc and waits for the welcome.
func (e *testEnv) join(rc roomCreds, id ident) *tclient {
	e.t.Helper()
	c := e.connect()
	c.id = id
	c.send(joinMsg(rc, id))
	c.welcome = c.expect(protocol.TypeWelcome)
	if c.welcome.Member != id.member || c.welcome.V != protocol.Version {
		e.t.Fatalf("welcome %+v for %s", c.welcome, id.member)
	}
	return c
}

func joinMsg(rc roomCreds, id ident) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeJoin, V: protocol.Version, Room: rc.room,
		Verifier: rc.verifier, Member: id.member, Pub: id.pub, MAC: id.mac}
}

// send writes m as JSON without validating it (tests send bad messages too).
func (c *tclient) send(m *protocol.Message) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.TextMessage, b)
}

func (c *tclient) sendRaw(mt int, b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitLimit))
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame; the test fails if none comes in time or the
// connection ended.
func (c *tclient) read() frame {
	c.t.Helper()
	select {
	case f := <-c.in:
		if f.err != nil {
			c.t.Fatalf("%s: connection ended: %v", c.id.member, f.err)
		}
		return f
	case <-time.After(waitLimit):
		c.t.Fatalf("%s: timed out waiting for a frame", c.id.member)
		return frame{}
	}
}

// next returns the next frame, which must be a valid text message.
func (c *tclient) next() *protocol.Message {
	c.t.Helper()
	f := c.read()
	if f.binary {
		c.t.Fatalf("got a binary frame, want a message")
	}
	m, err := protocol.Decode(f.data)
	if err != nil {
		c.t.Fatalf("server sent an invalid message %s: %v", f.data, err)
	}
	return m
}

// expect returns the next message, which must be of type typ.
func (c *tclient) expect(typ string) *protocol.Message {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got %s %+v, want %s", m.Type, m, typ)
	}
	return m
}

// expectError returns the next message, which must be error{code}.
func (c *tclient) expectError(code string) *protocol.Message {
	c.t.Helper()
	m := c.expect(protocol.TypeError)
	if m.Code != code {
		c.t.Fatalf("error %q (%s), want %q", m.Code, m.Error, code)
	}
	return m
}

// expectPresence returns the next message, which must be presence{event, member}.
func (c *tclient) expectPresence(event, member string) *protocol.Message {
	c.t.Helper()
	m := c.expect(protocol.TypePresence)
	if m.Event != event || m.Member != member {
		c.t.Fatalf("presence %s %s, want %s %s", m.Event, m.Member, event, member)
	}
	return m
}

// expectClose reads until the connection ends, which must be with a close
// frame of the given code; any other frame fails the test.
func (c *tclient) expectClose(code int) {
	c.t.Helper()
	select {
	case f := <-c.in:
		var ce *websocket.CloseError
		switch {
		case f.err == nil:
			c.t.Fatalf("got frame %q, want close %d", f.data, code)
		case !errors.As(f.err, &ce):
			c.t.Fatalf("connection ended with %v, want close %d", f.err, code)
		case ce.Code != code:
			c.t.Fatalf("close %d %q, want %d", ce.Code, ce.Text, code)
		}
	case <-time.After(waitLimit):
		c.t.Fatalf("timed out waiting for close %d", code)
	}
}

// sync makes a round trip through the server: once it returns, every frame
// sent before was handled (the server reads a connection in order).
func (c *tclient) sync() {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypeSignal, To: uuid.NewString(), Data: randB64(8)})
	c.expectError(protocol.CodeNoSuchMember)
}

func (c *tclient) ack(ids ...uint64) {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypeAck, IDs: ids})
}

// chunkDown returns the next frame, which must be a ChunkDown.
func (c *tclient) chunkDown() protocol.ChunkDown {
	c.t.Helper()
	return c.parseChunk(c.read())
}

// parseChunk parses f, which must be a ChunkDown.
func (c *tclient) parseChunk(f frame) protocol.ChunkDown {
	c.t.Helper()
	if !f.binary {
		c.t.Fatalf("got message %s, want a chunk", f.data)
	}
	d, err := protocol.ParseChunkDown(f.data)
	if err != nil {
		c.t.Fatalf("bad ChunkDown: %v", err)
	}
	return d
}

// quiet fails if a frame arrives within d (a bounded check that something
// does not happen; it never waits for state).
func (c *tclient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case f := <-c.in:
		c.t.Fatalf("unexpected frame %q (err %v)", f.data, f.err)
	case <-time.After(d):
	}
}

// testFile is a file's chunks as a sender uploads them.
type testFile struct {
	id     string
	chunks []protocol.Chunk
}

func newTestFile(n, size int) *testFile {
	u := uuid.New()
	f := &testFile{id: u.String()}
	for i := range n {
		f.chunks = append(f.chunks, protocol.Chunk{File: u, Index: uint32(i), Count: uint32(n),
			Final: i == n-1, Sealed: randBytes(size)})
	}
	return f
}

// announce sends file{} and returns file_ok.
func (c *tclient) announce(f *testFile) *protocol.Message {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypeFile, File: f.id, Chunks: uint32(len(f.chunks)), Data: randB64(64)})
	m := c.expect(protocol.TypeFileOK)
	if m.File != f.id {
		c.t.Fatalf("file_ok for %s, want %s", m.File, f.id)
	}
	return m
}

func (c *tclient) upload(f *testFile, from, to int) {
	c.t.Helper()
	for i := from; i < to; i++ {
		c.sendRaw(websocket.BinaryMessage, f.chunks[i].AppendUp(nil))
	}
}

// expectManifest returns the next message, which must be f's manifest from sender.
func (c *tclient) expectManifest(f *testFile, sender string) *protocol.Message {
	c.t.Helper()
	m := c.expect(protocol.TypeMsg)
	if m.File != f.id || m.Chunks != uint32(len(f.chunks)) || m.From != sender || m.ID == 0 {
		c.t.Fatalf("manifest %+v, want file %s from %s", m, f.id, sender)
	}
	return m
}

// expectChunk reads chunk i of f from sender and checks every header field
// and byte; it returns the item id.
func (c *tclient) expectChunk(f *testFile, i int, sender string) uint64 {
	c.t.Helper()
	return c.checkChunk(c.read(), f, i, sender)
}

// checkChunk checks that fr is chunk i of f from sender.
func (c *tclient) checkChunk(fr frame, f *testFile, i int, sender string) uint64 {
	c.t.Helper()
	d := c.parseChunk(fr)
	want := f.chunks[i]
	switch {
	case d.Item == 0:
		c.t.Fatal("item id 0")
	case uuid.UUID(d.Sender).String() != sender:
		c.t.Fatalf("chunk sender %x, want %s", d.Sender, sender)
	case d.File != want.File || d.Index != want.Index || d.Count != want.Count || d.Final != want.Final:
		c.t.Fatalf("chunk header %+v, want index %d of %d", d.Chunk, want.Index, want.Count)
	case string(d.Sealed) != string(want.Sealed):
		c.t.Fatalf("chunk %d bytes differ", i)
	}
	return d.Item
}

// storeEmpty checks that the relay store holds nothing.
func (e *testEnv) storeEmpty() {
	e.t.Helper()
	if st := e.st.Stats(); st.Bytes != 0 || st.Items != 0 {
		e.t.Fatalf("store holds %+v, want nothing", st)
	}
}

// smallRecvDialer dials with a tiny socket receive buffer, so a client that
// does not read stalls the server quickly.
func smallRecvDialer() *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return conn, err
		},
		ReadBufferSize: 1024,
	}
}

// recvFile reads f's manifest and then its chunks in order from sender,
// skipping presence events, and acks every item.
func (c *tclient) recvFile(f *testFile, sender string) {
	c.t.Helper()
	for i := -1; i < len(f.chunks); {
		fr := c.read()
		if !fr.binary {
			m, err := protocol.Decode(fr.data)
			switch {
			case err == nil && m.Type == protocol.TypePresence:
				continue
			case i >= 0 || err != nil || m.Type != protocol.TypeMsg || m.File != f.id ||
				m.From != sender || m.Chunks != uint32(len(f.chunks)):
				c.t.Fatalf("got %s, want item %d of file %s", fr.data, i, f.id)
			}
			c.ack(m.ID)
		} else {
			c.ack(c.checkChunk(fr, f, i, sender))
		}
		i++
	}
}
