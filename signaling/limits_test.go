package signaling

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

func (e *testEnv) limited(l Limit) int64 { return e.srv.Stats().Limited[l.String()] }

func TestConnsPerAddr(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxConnsPerAddr = 2 })
	rc := newCreds()
	a := e.join(rc, newIdent())
	e.join(rc, newIdent())
	over := e.connect()
	m := over.expectError(protocol.CodeTooMany)
	if !strings.Contains(m.Error, "your address") {
		t.Errorf("error text %q does not say why", m.Error)
	}
	over.expectClose(websocket.CloseTryAgainLater)
	if n := e.limited(LimitConnsPerAddr); n != 1 {
		t.Fatalf("conns_per_addr counted %d, want 1", n)
	}
	// A slot frees when a connection ends.
	a.close()
	e.waitGone(2) // the refused one and a
	e.join(rc, newIdent())
}

func TestConnsPerAddrHardCap(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxConnsPerAddr = 1 })
	e.join(newCreds(), newIdent())
	// The address has 1 live connection; one more is upgraded and refused
	// with an error message; with 2 open (twice the cap), the next one is
	// refused before the upgrade.
	ws, _, err := e.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close() // never reads: its refusal lingers for the close grace
	_, resp, err := e.dial(nil)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("third connection: err %v, response %v; want HTTP 429", err, resp)
	}
}

func TestJoinRate(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.JoinRate, c.JoinBurst = 0.001, 2 })
	rc := newCreds()
	e.join(rc, newIdent())
	e.join(rc, newIdent())
	c := e.connect()
	c.expectError(protocol.CodeRateLimited)
	c.expectClose(websocket.CloseTryAgainLater)
	if n := e.limited(LimitJoinRate); n != 1 {
		t.Fatalf("join_rate counted %d, want 1", n)
	}
}

func TestMsgRateDrops(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MsgRate, c.MsgBurst = 0.001, 3 })
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	// Both members share the address (127.0.0.1) and its 3 tokens.
	for range 3 {
		a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: randB64(8)})
		b.expect(protocol.TypeSignal)
	}
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: randB64(8)})
	m := a.expectError(protocol.CodeRateLimited)
	if !strings.Contains(m.Error, "signal was dropped") {
		t.Errorf("error text %q", m.Error)
	}
	f := newTestFile(1, 100)
	a.send(&protocol.Message{Type: protocol.TypeFile, File: f.id, Chunks: 1, Data: randB64(64)})
	if m := a.expectError(protocol.CodeRateLimited); m.File != f.id {
		t.Fatalf("rate_limited for file %q, want %s", m.File, f.id)
	}
	// Acks are exempt (an unknown id is ignored; the round trip shows the
	// ack was read and not answered with an error).
	a.ack(12345)
	a.upload(f, 0, 1) // binary: answered with no_such_file, not rate_limited
	a.expectError(protocol.CodeNoSuchFile)
	if n := e.limited(LimitMsgRate); n != 2 {
		t.Fatalf("msg_rate counted %d, want 2", n)
	}
	b.quiet(50 * time.Millisecond)
}

func TestMsgRateSlowsDown(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MsgRate, c.MsgBurst = 50, 1 })
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	// Over the rate but within the wait: every signal arrives, later.
	for range 10 {
		a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: randB64(8)})
	}
	for range 10 {
		b.expect(protocol.TypeSignal)
	}
	if n := e.limited(LimitMsgRate); n != 0 {
		t.Fatalf("msg_rate counted %d refusals, want none", n)
	}
}

func TestUploadRateThrottles(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.UploadRate, c.UploadBurst = 400<<10, 1 })
	relaySixChunks(e)
	if n := e.limited(LimitUploadRate); n == 0 {
		t.Fatal("upload_rate never throttled")
	}
}

// TestUploadRateLAN: a loopback client (the tests' own) is paced by
// UploadRateLAN, here no limit, not by UploadRate.
func TestUploadRateLAN(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.UploadRate, c.UploadBurst, c.UploadRateLAN = 400<<10, 1, -1 })
	relaySixChunks(e)
	if n := e.limited(LimitUploadRate); n != 0 {
		t.Fatalf("upload_rate throttled a loopback client %d times", n)
	}
}

// relaySixChunks relays a file of six 60,000-byte chunks from one new
// member to another through e and waits for its delivery report.
func relaySixChunks(e *testEnv) {
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(6, 60000)
	a.announce(f)
	a.upload(f, 0, len(f.chunks))
	b.recvFile(f, a.id.member)
	a.expect(protocol.TypeProgress)
	a.expect(protocol.TypeDelivered)
}

// TestPingDeadline: a client that never answers pings is dropped; one that
// does stays. What is asserted is causal, not a wall-clock race: the silent
// client was pinged and is dropped for it (ping_timeout, no sooner than the
// pong wait after its join was sent); the answering client, which sends no
// frame of its own after its join, answers pings and outlives the silent one
// by more than a whole pong wait, so only its pongs can have kept it. The
// pong wait is 1 s (20 ping intervals): a late pong costs the answering
// client its connection only if its reader or the server's stalls for that
// long (300 ms once did, under a loaded -race run of every package).
func TestPingDeadline(t *testing.T) {
	const pingInterval, pongWait = 50 * time.Millisecond, time.Second
	e := newEnv(t, func(c *Config, _ *store.Config) { c.PingInterval, c.PongWait = pingInterval, pongWait })
	rc := newCreds()
	// Handlers are set before each reader starts (no race with it).
	var answered, ignored atomic.Int64
	dialWith := func(ping func(ws *websocket.Conn, data string) error) *tclient {
		ws, _, err := e.dial(nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		ws.SetPingHandler(func(data string) error { return ping(ws, data) })
		return startClient(t, ws)
	}
	b := dialWith(func(ws *websocket.Conn, data string) error { // answers like gorilla's default
		answered.Add(1)
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(waitLimit))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	b.id = newIdent()
	b.send(joinMsg(rc, b.id))
	b.expect(protocol.TypeWelcome)
	mute := dialWith(func(*websocket.Conn, string) error { ignored.Add(1); return nil }) // reads, never pongs
	mute.id = newIdent()
	sent := time.Now() // mute's deadline counts from after this; b is silent since before
	mute.send(joinMsg(rc, mute.id))
	mute.expect(protocol.TypeWelcome)
	b.expectPresence(protocol.EventJoin, mute.id.member)
	answeredBefore := answered.Load()
	b.expectPresence(protocol.EventOffline, mute.id.member)
	dropped := time.Since(sent)
	t.Logf("silent client dropped %v after its join was sent (pong wait %v); it ignored %d pings, the other answered %d",
		dropped, pongWait, ignored.Load(), answered.Load())
	if dropped < pongWait {
		t.Errorf("silent client dropped %v after its join, before the pong wait %v", dropped, pongWait)
	}
	for f := range mute.in {
		if f.err != nil {
			break
		}
	}
	if n := ignored.Load(); n == 0 {
		t.Errorf("silent client was dropped without being pinged")
	}
	if n := e.limited(LimitPingTimeout); n != 1 {
		t.Fatalf("ping_timeout counted %d, want 1", n)
	}
	// b sent nothing but pongs since before sent, so for more than a pong
	// wait (checked above): its pongs are what kept it.
	if answered.Load() <= answeredBefore {
		t.Errorf("answering client answered no ping while the silent one waited to be dropped")
	}
	b.sync() // b answered every ping and is still here
}

// TestOversizeFrameMemory: a 10 MiB frame is refused with 1009 without the
// server allocating it.
func TestOversizeFrameMemory(t *testing.T) {
	e := newEnv(t)
	a := e.join(newCreds(), newIdent())
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	peak0, resetOK := resetPeakRSS()
	done := make(chan error, 1)
	go func() { done <- writeStreamed(a.ws, 10<<20) }()
	a.expectClose(websocket.CloseMessageTooBig)
	err := <-done
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("writer: %v; allocated in the process while refusing: %d KiB", err, alloc>>10)
	if resetOK {
		t.Logf("peak RSS growth: %d KiB", (peakRSS()-peak0)>>10)
	}
	if alloc > 2<<20 {
		t.Fatalf("%d bytes allocated while refusing a 10 MiB frame, want < 2 MiB", alloc)
	}
	if n := e.limited(LimitFrameSize); n != 1 {
		t.Fatalf("frame_size counted %d, want 1", n)
	}
}

// writeStreamed writes one binary frame of n bytes from a small buffer.
func writeStreamed(ws *websocket.Conn, n int) error {
	w, err := ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, len(buf))
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return w.Close()
}

// resetPeakRSS resets the process's peak RSS (VmHWM) to its current RSS and
// returns it; false where /proc does not allow it.
func resetPeakRSS() (int64, bool) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	return peakRSS(), true
}

// peakRSS returns VmHWM in bytes (0 if unknown).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestSlowloris: 500 connections that never finish their request headers
// are all closed by the header timeout, while two real clients join and
// exchange messages through the same server.
func TestSlowloris(t *testing.T) {
	const (
		lorises       = 500
		headerTimeout = 500 * time.Millisecond
		roundTrips    = 50
	)
	env := newEnv(t, func(c *Config, _ *store.Config) { c.ReadHeaderTimeout = headerTimeout })
	httpClosed := make(chan struct{}, lorises+10)
	env.srv.onHTTPClosed(func() { httpClosed <- struct{}{} })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- env.srv.Run(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr := ln.Addr().String()

	closed := make([]time.Duration, lorises) // how long each stayed open
	var wg sync.WaitGroup
	for i := range lorises {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("loris %d: %v", i, err)
		}
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
			var b [512]byte
			for {
				if _, err := conn.Read(b[:]); err != nil {
					closed[i] = time.Since(start)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						closed[i] = -1 // never closed by the server
					}
					return
				}
			}
		}()
	}

	// Meanwhile, real clients on the same server.
	wsURL := "ws://" + addr + "/ws"
	dial := func() *tclient {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("dial during the attack: %v", err)
		}
		return startClient(t, ws)
	}
	rc := newCreds()
	joinStart := time.Now()
	a, b := dial(), dial()
	a.id, b.id = newIdent(), newIdent()
	a.send(joinMsg(rc, a.id))
	a.expect(protocol.TypeWelcome)
	b.send(joinMsg(rc, b.id))
	b.expect(protocol.TypeWelcome)
	a.expectPresence(protocol.EventJoin, b.id.member)
	joined := time.Since(joinStart)
	var rtts []time.Duration
	for range roundTrips {
		start := time.Now()
		a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(300)})
		m := b.expect(protocol.TypeMsg)
		b.ack(m.ID)
		rtts = append(rtts, time.Since(start))
	}
	wg.Wait()
	for range lorises {
		select {
		case <-httpClosed:
		case <-time.After(waitLimit):
			t.Fatal("the server did not close every slowloris connection")
		}
	}

	slices.Sort(rtts)
	var worst time.Duration
	for i, d := range closed {
		if d < 0 {
			t.Errorf("loris %d was never closed", i)
		}
		worst = max(worst, d)
	}
	slices.Sort(closed)
	t.Logf("during %d slowloris connections: two joins in %v; message p50 %v p99 %v max %v",
		lorises, joined, rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1])
	t.Logf("slowloris connections closed after p50 %v, p99 %v, max %v (header timeout %v)",
		closed[lorises/2], closed[lorises*99/100], worst, headerTimeout)
	if n := env.limited(LimitHeaderTimeout); n != lorises {
		t.Errorf("header_timeout counted %d, want %d", n, lorises)
	}
}
