package main

// Hardening tests against the real binary (issue 6): memory under a 10 MiB
// frame and a relay flood, /metrics, security headers, --tls auto and the
// warning for plain HTTP on a LAN address.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/pion/stun/v3"

	"cloakroom/internal/protocol"
)

var metricsRe = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// startServeMetrics starts a server with /metrics on a free port.
func startServeMetrics(t *testing.T, extra ...string) (p *proc, url, metrics string) {
	t.Helper()
	p, url = startServer(t, append([]string{"--metrics-addr", "127.0.0.1:0"}, extra...)...)
	return p, url, p.waitLine(t, metricsRe, 5*time.Second)[1]
}

// wsClient is a raw protocol client (no crypto: the server never checks
// anything but the verifier).
type wsClient struct {
	t    *testing.T
	ws   *websocket.Conn
	id   string
	room [2]string // room id, verifier
}

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return protocol.EncodeB64(b)
}

func newRoomCreds() [2]string {
	return [2]string{randB64(protocol.RoomIDLen), randB64(protocol.VerifierLen)}
}

func wsURL(server string) string {
	return "ws" + strings.TrimPrefix(server, "http") + "/ws"
}

// dialJoin connects to server's WebSocket and joins room; it returns the
// client and the welcome.
func dialJoin(t *testing.T, d *websocket.Dialer, server string, room [2]string) (*wsClient, *protocol.Message) {
	t.Helper()
	ws, _, err := d.Dial(wsURL(server), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: t, ws: ws, id: uuid.NewString(), room: room}
	c.send(&protocol.Message{Type: protocol.TypeJoin, V: protocol.Version, Room: room[0], Verifier: room[1],
		Member: c.id, Pub: randB64(protocol.PubLen), MAC: randB64(protocol.MACLen)})
	w := c.next()
	if w.Type != protocol.TypeWelcome {
		t.Fatalf("join: got %+v", w)
	}
	return c, w
}

func (c *wsClient) send(m *protocol.Message) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads the next text message (within 10 s).
func (c *wsClient) next() *protocol.Message {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if mt != websocket.TextMessage {
			continue
		}
		m, err := protocol.Decode(data)
		if err != nil {
			c.t.Fatalf("bad message %s: %v", data, err)
		}
		return m
	}
}

// nextOf reads until a message of type typ.
func (c *wsClient) nextOf(typ string) *protocol.Message {
	c.t.Helper()
	for {
		if m := c.next(); m.Type == typ {
			return m
		}
	}
}

// procMem reads VmRSS and VmHWM (peak) of pid in bytes.
func procMem(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n << 10
		case "VmHWM:":
			peak = n << 10
		}
	}
	return rss, peak
}

// resetPeak resets pid's VmHWM to its current RSS and returns it.
func resetPeak(t *testing.T, pid int) int64 {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS of the server: %v", err)
	}
	rss, _ := procMem(t, pid)
	return rss
}

// scrape reads /metrics into name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	m, err := tryScrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryScrape reads /metrics; safe to call from any goroutine.
func tryScrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		return nil, fmt.Errorf("metrics Content-Type %q", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// TestServeOversizeFrame: a 10 MiB frame gets close 1009 and the server's
// RSS grows by less than 2 MiB.
func TestServeOversizeFrame(t *testing.T) {
	srv, url, metrics := startServeMetrics(t)
	c, _ := dialJoin(t, websocket.DefaultDialer, url, newRoomCreds())
	pid := srv.cmd.Process.Pid
	base := resetPeak(t, pid)

	errc := make(chan error, 1)
	go func() { errc <- writeBig(c.ws, 10<<20) }()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ce *websocket.CloseError
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("connection ended with %v, want close 1009", err)
		}
		break
	}
	werr := <-errc
	_, peak := procMem(t, pid)
	t.Logf("server RSS %d KiB before, peak %d KiB after (growth %d KiB); writer: %v", base>>10, peak>>10, (peak-base)>>10, werr)
	if peak-base >= 2<<20 {
		t.Fatalf("server RSS grew by %d KiB, want < 2048", (peak-base)>>10)
	}
	// The server counts the limit once its reader has returned, just after
	// gorilla sent the close frame we read: wait for the count.
	var n float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n = scrape(t, metrics)[`cloakroom_limited_total{limit="frame_size"}`]
		if n != 0 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 {
		t.Fatalf("frame_size counter %v, want 1", n)
	}
}

// writeBig writes one binary frame of n bytes from a small buffer.
func writeBig(ws *websocket.Conn, n int) error {
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

// TestServeRelayFlood: one member uploads as fast as it can (its recipient
// acks everything as fast as it can) while another room chats. The relay
// never holds more than its cap, the server's memory grows by less than
// the cap + 10%, and the other room's messages all arrive.
func TestServeRelayFlood(t *testing.T) {
	const (
		relayCap = 256 << 20
		flood    = 1 << 30 // bytes uploaded
		chats    = 100
	)
	srv, url, metrics := startServeMetrics(t, "--relay-max-bytes", "256MiB", "--relay-room-bytes", "240MiB",
		"--relay-upload-rate", "0")
	pid := srv.cmd.Process.Pid
	big := &websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	roomA, roomB := newRoomCreds(), newRoomCreds()
	up, _ := dialJoin(t, big, url, roomA)
	down, _ := dialJoin(t, big, url, roomA)
	up.nextOf(protocol.TypePresence)
	b1, _ := dialJoin(t, websocket.DefaultDialer, url, roomB)
	b2, _ := dialJoin(t, websocket.DefaultDialer, url, roomB)
	b1.nextOf(protocol.TypePresence)
	base := resetPeak(t, pid)

	chunks := flood / protocol.MaxSealedChunk
	file := uuid.New()
	up.send(&protocol.Message{Type: protocol.TypeFile, File: file.String(), Chunks: uint32(chunks), Data: randB64(200)})
	if m := up.nextOf(protocol.TypeFileOK); len(m.Recipients) != 1 {
		t.Fatalf("file_ok %+v", m)
	}
	var wg sync.WaitGroup
	var maxRelay atomic.Int64
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// However the test ends, its goroutines end before it does (a failure
	// reported after the test returned would panic the whole binary).
	t.Cleanup(func() {
		halt()
		up.ws.Close()
		down.ws.Close()
		wg.Wait()
	})
	wg.Add(3)
	go func() { // the flood
		defer wg.Done()
		sealed := make([]byte, protocol.MaxSealedChunk)
		for i := range chunks {
			ch := protocol.Chunk{File: file, Index: uint32(i), Count: uint32(chunks), Final: i == chunks-1, Sealed: sealed}
			// Back-pressure may hold a write while the relay is full; a
			// deadline per write, not for the whole flood (a loaded machine
			// takes longer than 10 s for 1 GiB).
			_ = up.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := up.ws.WriteMessage(websocket.BinaryMessage, ch.AppendUp(nil)); err != nil {
				if !stopped() {
					t.Errorf("upload chunk %d: %v", i, err)
				}
				return
			}
		}
	}()
	go func() { // the recipient: acks everything at once
		defer wg.Done()
		var ids []uint64
		for got := 0; got < chunks; {
			_ = down.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			mt, data, err := down.ws.ReadMessage()
			if err != nil {
				if !stopped() {
					t.Errorf("recipient: %v after %d chunks", err, got)
				}
				return
			}
			if mt == websocket.BinaryMessage {
				d, err := protocol.ParseChunkDown(data)
				if err != nil {
					t.Errorf("recipient: %v", err)
					return
				}
				ids = append(ids, d.Item)
				got++
			} else if m, _ := protocol.Decode(data); m != nil && m.Type == protocol.TypeMsg {
				ids = append(ids, m.ID)
			}
			if len(ids) >= 32 || got == chunks {
				down.send(&protocol.Message{Type: protocol.TypeAck, IDs: ids})
				ids = nil
			}
		}
	}()
	go func() { // watch the relay's bytes
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			m, err := tryScrape(metrics)
			if err != nil {
				if !stopped() {
					t.Errorf("scrape: %v", err)
				}
				return
			}
			if v := int64(m["cloakroom_relay_bytes"]); v > maxRelay.Load() {
				maxRelay.Store(v)
			}
		}
	}()

	// Room B chats meanwhile.
	var rtts []time.Duration
	for range chats {
		start := time.Now()
		b1.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(300)})
		m := b2.nextOf(protocol.TypeMsg)
		b2.send(&protocol.Message{Type: protocol.TypeAck, IDs: []uint64{m.ID}})
		rtts = append(rtts, time.Since(start))
		time.Sleep(10 * time.Millisecond) // pace: a chat, not a second flood
	}
	delivered := up.nextOf(protocol.TypeDelivered)
	halt()
	wg.Wait()
	_, peak := procMem(t, pid)
	slices.Sort(rtts)
	t.Logf("flood of %d MiB delivered (%s); relay peak %d KiB of %d KiB; server RSS %d MiB before, peak %d MiB (growth %d MiB, cap %d MiB)",
		flood>>20, delivered.Member[:8], maxRelay.Load()>>10, relayCap>>10, base>>20, peak>>20, (peak-base)>>20, relayCap>>20)
	t.Logf("room B during the flood: %d messages, p50 %v, p99 %v, max %v", chats, rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1])
	if maxRelay.Load() > relayCap {
		t.Errorf("relay held %d bytes, cap %d", maxRelay.Load(), relayCap)
	}
	if growth := peak - base; growth > relayCap+relayCap/10 {
		t.Errorf("server RSS grew by %d MiB, want at most the relay cap + 10%% (%d MiB)", growth>>20, (relayCap+relayCap/10)>>20)
	}
}

// TestServeMetrics: /metrics answers on its own loopback listener and its
// counters move.
func TestServeMetrics(t *testing.T) {
	_, url, metrics := startServeMetrics(t, "--max-conns-per-ip", "2")
	if !strings.HasPrefix(metrics, "http://127.0.0.1:") {
		t.Fatalf("metrics on %s, want loopback", metrics)
	}
	m := scrape(t, metrics)
	for _, name := range []string{"cloakroom_rooms", "cloakroom_members", "cloakroom_websocket_connections",
		"cloakroom_relay_bytes", "cloakroom_relay_items", "cloakroom_turn_allocations",
		"cloakroom_turn_relayed_bytes_total", `cloakroom_limited_total{limit="conns_per_addr"}`,
		`cloakroom_turn_refused_total{reason="quota"}`, "process_resident_memory_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	// /metrics is not on the public listener.
	if resp, err := http.Get(url + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics served on the public listener")
		}
	}
	room := newRoomCreds()
	a, _ := dialJoin(t, websocket.DefaultDialer, url, room)
	b, _ := dialJoin(t, websocket.DefaultDialer, url, room)
	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(100)})
	b.nextOf(protocol.TypeMsg) // stored, owed to b, not acked
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	over := &wsClient{t: t, ws: ws}
	if e := over.next(); e.Code != protocol.CodeTooMany {
		t.Fatalf("third connection got %+v, want too_many", e)
	}
	m = scrape(t, metrics)
	for name, want := range map[string]float64{
		"cloakroom_rooms": 1, "cloakroom_members": 2, "cloakroom_members_online": 2,
		"cloakroom_relay_items": 1, `cloakroom_limited_total{limit="conns_per_addr"}`: 1,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if m["cloakroom_websocket_connections_total"] < 2 || m["cloakroom_relay_bytes"] <= 0 {
		t.Errorf("connections_total %v, relay_bytes %v", m["cloakroom_websocket_connections_total"], m["cloakroom_relay_bytes"])
	}
}

// TestServeSecurityHeaders: the page and a script carry a strict CSP (no
// inline script), no referrer, nosniff and no framing; the page has no
// inline script.
func TestServeSecurityHeaders(t *testing.T) {
	_, url := startServer(t, "--metrics-addr", "")
	for _, path := range []string{"/", "/js/app.js", "/healthz"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		h := resp.Header
		if got := h.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", path, got)
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", path, got)
		}
		if path == "/healthz" {
			continue
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline script", path, csp)
		}
		if path == "/js/app.js" && !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
			t.Errorf("app.js Content-Type %q", h.Get("Content-Type"))
		}
		if path == "/" {
			for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(string(body), -1) {
				if !strings.Contains(tag, "src=") {
					t.Errorf("inline script in the page: %s", tag)
				}
			}
		}
	}
}

var (
	httpsRe       = regexp.MustCompile(`serving on (https://\S+)`)
	fingerprintRe = regexp.MustCompile(`SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})`)
	openRe        = regexp.MustCompile(`open (https://\S+) \(or scan this QR code\)`)
)

// TestServeTLSAuto: --tls auto serves HTTPS and WSS with a self-signed
// ECDSA certificate whose fingerprint it prints, with a QR code; TURN over
// TLS uses the same certificate; --tls-dir keeps it across restarts.
func TestServeTLSAuto(t *testing.T) {
	dir := t.TempDir()
	turnTLS := freePort(t)
	args := []string{"serve", "--addr", "127.0.0.1:0", "--tls", "auto", "--tls-dir", dir, "--metrics-addr", "",
		"--turn-port", strconv.Itoa(freePort(t)), "--turn-tls-port", strconv.Itoa(turnTLS)}
	srv := start(t, args...)
	url := srv.waitLine(t, httpsRe, 20*time.Second)[1]
	fp := srv.waitLine(t, fingerprintRe, 5*time.Second)[1]
	page := srv.waitLine(t, openRe, 5*time.Second)[1]
	if !strings.HasPrefix(page, "https://127.0.0.1:") {
		t.Errorf("page URL %s", page)
	}
	srv.waitLine(t, regexp.MustCompile(`^▀{20,}$`), 5*time.Second) // the QR code's last line
	if out := strings.Join(srv.output(), "\n"); !strings.Contains(out, "turns:127.0.0.1:"+strconv.Itoa(turnTLS)) {
		t.Errorf("no turns: URL in the output:\n%s", out)
	}

	// The HTTPS page, pinned to the printed fingerprint.
	pinned := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		leaf := cs.PeerCertificates[0]
		if got := colonHex(sha256.Sum256(leaf.Raw)); got != fp {
			return fmt.Errorf("certificate %s, printed %s", got, fp)
		}
		if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
			return err
		}
		return leaf.VerifyHostname("localhost")
	}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: pinned}}
	resp, err := hc.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if alg := resp.TLS.PeerCertificates[0].PublicKeyAlgorithm.String(); alg != "ECDSA" {
		t.Errorf("key algorithm %s, want ECDSA (P-256)", alg)
	}
	// A member joins over WSS.
	dialJoin(t, &websocket.Dialer{TLSClientConfig: pinned}, url, newRoomCreds())
	// TURN over TLS presents the same certificate.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(turnTLS), pinned)
	if err != nil {
		t.Fatalf("TURN over TLS: %v", err)
	}
	conn.Close()

	// A restart with the same --tls-dir keeps the certificate.
	srv.cmd.Process.Signal(os.Interrupt)
	srv.wait(t, 10*time.Second)
	again := start(t, args...)
	if fp2 := again.waitLine(t, fingerprintRe, 20*time.Second)[1]; fp2 != fp {
		t.Fatalf("fingerprint after restart %s, before %s", fp2, fp)
	}
}

func colonHex(sum [32]byte) string {
	var sb strings.Builder
	for i, b := range sum {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", b)
	}
	return sb.String()
}

// TestServeWarnsPlainHTTPOnLAN: plain HTTP on a non-loopback address warns
// that phones on the LAN cannot use the page; loopback does not.
func TestServeWarnsPlainHTTPOnLAN(t *testing.T) {
	lan := start(t, "serve", "--addr", "0.0.0.0:0", "--turn-port", "0", "--metrics-addr", "")
	lan.waitLine(t, regexp.MustCompile(`WARNING: plain HTTP .*phones .* will not be able to use the page.*--tls auto`), 20*time.Second)
	local, _ := startServer(t, "--metrics-addr", "")
	for _, l := range local.output() {
		if strings.Contains(l, "WARNING") {
			t.Errorf("loopback server warned: %s", l)
		}
	}
}

// TestServeTURNExternal: with --turn-external, a joining member gets that
// server with REST credentials from --turn-secret, and they work on a real
// coturn server sharing the secret.
func TestServeTURNExternal(t *testing.T) {
	const secret = "shared-with-coturn"
	port := freePort(t)
	turnURL := fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", port)
	coturn := startCoturn(t, port, secret)
	_, url := startServer(t, "--metrics-addr", "", "--turn-external", turnURL, "--turn-secret", secret)
	c, w := dialJoin(t, websocket.DefaultDialer, url, newRoomCreds())
	if len(w.ICE) != 1 || !slices.Equal(w.ICE[0].URLs, []string{turnURL}) {
		t.Fatalf("welcome ICE %+v, want only %s", w.ICE, turnURL)
	}
	ice := w.ICE[0]
	exp, id, ok := strings.Cut(ice.Username, ":")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || !strings.HasPrefix(id, c.id+".") || expiry < time.Now().Unix() || expiry != w.Expires {
		t.Fatalf("username %q (expires %d), want EXPIRY:%s.ROOM", ice.Username, w.Expires, c.id)
	}
	if want := restPassword(secret, ice.Username); ice.Credential != want {
		t.Fatalf("credential %q, want base64(HMAC-SHA1(secret, username)) %q", ice.Credential, want)
	}
	// Fresh credentials on request are for the same server.
	c.send(&protocol.Message{Type: protocol.TypeTURN})
	if m := c.nextOf(protocol.TypeTURN); len(m.ICE) != 1 || m.ICE[0].URLs[0] != turnURL {
		t.Fatalf("turn answer %+v", m)
	}
	out, code := runUclient(t, port, "-u", ice.Username, "-w", ice.Credential, "-y", "-c", "-n", "20", "-l", "500", "-m", "1", "-z", "1")
	if code != 0 || !strings.Contains(out, "tot_recv_msgs=") || strings.Contains(out, "error 401") {
		t.Fatalf("uclient against coturn with the server's credentials: exit %d\n%s\ncoturn:\n%s", code, out, strings.Join(coturn.output(), "\n"))
	}
}

// restPassword is the TURN REST password, computed here by hand:
// base64(HMAC-SHA1(secret, username)).
func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// startCoturn runs coturn's turnserver on 127.0.0.1:port with the REST
// secret and waits until it answers a STUN binding request.
func startCoturn(t *testing.T, port int, secret string) *proc {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		t.Fatal("turnserver not found: install coturn (apt-get install -y coturn)")
	}
	dir := t.TempDir()
	p, _ := startCmd(t, exec.Command(bin, "-n", "--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--relay-ip", "127.0.0.1", "--min-port", "49152", "--max-port", "65535",
		"--use-auth-secret", "--static-auth-secret", secret, "--realm", "cloakroom",
		"--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "pid"), "--db", filepath.Join(dir, "turndb")), false)
	conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("coturn does not answer on port %d:\n%s", port, strings.Join(p.output(), "\n"))
		}
		_, _ = conn.Write(req.Raw)
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && stun.IsMessage(buf[:n]) {
			return p
		}
	}
}

// runUclient runs turnutils_uclient against 127.0.0.1:port.
func runUclient(t *testing.T, port int, args ...string) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("turnutils_uclient")
	if err != nil {
		t.Fatal("turnutils_uclient not found: install coturn (apt-get install -y coturn)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "-L", "127.0.0.1", "-p", strconv.Itoa(port), "127.0.0.1")
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("turnutils_uclient timed out:\n%s", out)
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}
