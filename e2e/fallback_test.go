package e2e

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloakroom/client"
)

// noWSProxy is a middlebox in front of the server that answers 403 to any
// request with "Upgrade: websocket" and passes everything else (streaming
// answers as they come). With cutAfter > 0 it also breaks every down
// stream (/h/down) after that many bytes — in the middle of a frame —
// or after cutEvery, as a proxy with a short timeout would.
type noWSProxy struct {
	*httptest.Server
	refused  atomic.Int64
	cuts     atomic.Int64
	cutAfter int64
	cutEvery time.Duration
}

func newNoWSProxy(t *testing.T, target string, cutAfter int64, cutEvery time.Duration) *noWSProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &noWSProxy{cutAfter: cutAfter, cutEvery: cutEvery}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		if p.cutAfter > 0 && resp.Request.URL.Path == "/h/down" {
			resp.Body = &cutReader{ReadCloser: resp.Body, left: p.cutAfter, until: time.Now().Add(p.cutEvery), cuts: &p.cuts}
		}
		return nil
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			p.refused.Add(1)
			http.Error(w, "WebSocket not allowed here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// cutReader fails after left bytes or at until, whichever comes first.
type cutReader struct {
	io.ReadCloser
	left  int64
	until time.Time
	cuts  *atomic.Int64
}

var errCut = errors.New("cut by the middlebox")

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 || time.Now().After(c.until) {
		c.cuts.Add(1)
		return 0, errCut
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

// TestHTTPFallbackChatAndRelay: behind a middlebox that refuses WebSocket
// upgrades and cuts every down stream mid-frame, two CLI clients fall back
// to HTTP (and say so), chat both ways and move a file through the relay
// intact, each frame delivered once.
func TestHTTPFallbackChatAndRelay(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	mb := newNoWSProxy(t, ts.URL, 300_001, 2*time.Second)
	link := newSecret(t).Link(mb.URL)
	var fellBack atomic.Int64
	fallback := func(o *client.Options) { o.OnFallback = func(error) { fellBack.Add(1) } }
	alice := dialPeer(ctx, t, link, "alice", fallback)
	bob := dialPeer(ctx, t, link, "bob", fallback)
	meshOnline(ctx, t, alice, bob)
	for _, p := range []*peer{alice, bob} {
		if w := p.Wire(); w != client.WireHTTP {
			t.Fatalf("%s connected over %q, want %q", p.name, w, client.WireHTTP)
		}
	}
	if n := fellBack.Load(); n != 2 {
		t.Fatalf("OnFallback called %d times, want 2 (once per client)", n)
	}
	if err := alice.SendChat(ctx, "hello bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendChat(ctx, "hello alice"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, bob, "from alice", func(c client.Chat) bool { return c.Text == "hello bob" })
	waitChat(ctx, t, alice, "from bob", func(c client.Chat) bool { return c.Text == "hello alice" })

	const size = 16 << 20
	path, sum := makeFile(t, t.TempDir(), "fallback.bin", size, "")
	res := sendAsync(ctx, alice, path)
	f := nextFile(ctx, t, bob)
	if f.Err != nil || f.SHA256 != sum || f.Size != size {
		t.Fatalf("bob received %+v, want fallback.bin with SHA-256 %s", f, sum)
	}
	if s := fileSHA256(t, f.Path); s != sum {
		t.Fatalf("file on disk has SHA-256 %s, want %s", s, sum)
	}
	if r := awaitSend(ctx, t, res); r.err != nil {
		t.Fatalf("SendFile: %v", r.err)
	}
	if got := len(bob.chats.snapshot()); got != 1 {
		t.Errorf("bob got %d chats, want 1", got)
	}
	if mb.refused.Load() < 2 || mb.cuts.Load() == 0 {
		t.Errorf("middlebox refused %d upgrades and cut %d streams; want >= 2 and > 0", mb.refused.Load(), mb.cuts.Load())
	}
	t.Logf("middlebox: %d upgrades refused, %d down streams cut", mb.refused.Load(), mb.cuts.Load())
}

// TestRelayThroughputByWire moves a 16 MiB file through the relay between
// two clients over WebSocket and over the HTTP fallback (behind a
// middlebox that refuses upgrades and does not cut streams; the WebSocket
// through a TCP proxy, so both take one hop), in the same
// run, and logs both rates (BENCHMARKS.md "HTTP fallback"); it asserts no
// rate: go test ./e2e -run RelayThroughputByWire -v
func TestRelayThroughputByWire(t *testing.T) {
	const size = 16 << 20
	path, sum := makeFile(t, t.TempDir(), "bench.bin", size, "")
	for _, kind := range []string{client.WireWebSocket, client.WireHTTP} {
		ctx := testCtx(t)
		ts := newServer(t, serverOpts{})
		// One proxy hop on both: a TCP relay for the WebSocket, the
		// middlebox (a reverse proxy) for HTTP.
		url := newTCPProxy(t, strings.TrimPrefix(ts.URL, "http://")).URL()
		if kind == client.WireHTTP {
			url = newNoWSProxy(t, ts.URL, 0, 0).URL
		}
		link := newSecret(t).Link(url)
		alice := dialPeer(ctx, t, link, "alice-"+kind, nil)
		bob := dialPeer(ctx, t, link, "bob-"+kind, nil)
		meshOnline(ctx, t, alice, bob)
		if w := alice.Wire(); w != kind {
			t.Fatalf("connected over %s, want %s", w, kind)
		}
		start := time.Now()
		res := sendAsync(ctx, alice, path)
		f := nextFile(ctx, t, bob)
		if f.Err != nil || f.SHA256 != sum {
			t.Fatalf("%s: received %+v", kind, f)
		}
		if r := awaitSend(ctx, t, res); r.err != nil {
			t.Fatalf("%s: %v", kind, r.err)
		}
		d := time.Since(start)
		t.Logf("relay over %-9s: 16 MiB in %v, %.1f MiB/s", kind, d.Round(time.Millisecond), size/float64(1<<20)/d.Seconds())
	}
}
