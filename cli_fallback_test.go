package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upgradeRefuser is a middlebox that answers 403 to every WebSocket
// upgrade and passes everything else, streaming.
func upgradeRefuser(t *testing.T, target string) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	var refused atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			refused.Add(1)
			http.Error(w, "WebSocket not allowed here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &refused
}

var fallbackRe = regexp.MustCompile(`connected over HTTP fallback \(WebSocket refused: .*403`)

// TestCLIHTTPFallback: behind a middlebox that refuses WebSocket, CLI
// members say they fell back to HTTP, chat, and move a 64 MiB file through
// the relay intact.
func TestCLIHTTPFallback(t *testing.T) {
	size := transferSize(t)
	_, direct := startServer(t, "--relay-max-bytes", "64MiB")
	mb, refused := upgradeRefuser(t, direct)
	link, _ := newRoom(t, mb)

	a, aIn := startIn(t, true, "chat", link)
	a.waitLine(t, fallbackRe, 20*time.Second)
	a.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
	b, bIn := startIn(t, true, "chat", link)
	b.waitLine(t, fallbackRe, 20*time.Second)
	aID := b.waitLine(t, regexp.MustCompile(`^stderr: \* ([0-9a-f]{8}) online$`), 20*time.Second)[1]
	fmt.Fprintln(aIn, "hello over HTTP")
	b.waitLine(t, regexp.MustCompile(`^`+aID+`: hello over HTTP$`), 20*time.Second)
	aIn.Close()
	bIn.Close()
	_ = a.wait(t, 10*time.Second)
	_ = b.wait(t, 10*time.Second)

	out := t.TempDir()
	r := start(t, "recv", "--transport", "relay", "-o", out, "--count", "1", link)
	r.waitLine(t, fallbackRe, 20*time.Second)
	r.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	src, want := randomFile(t, t.TempDir(), size)
	began := time.Now()
	snd := start(t, "send", "--transport", "relay", link, src)
	if err := snd.wait(t, 60*time.Second+time.Duration(size>>20)*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := r.wait(t, 30*time.Second); err != nil {
		t.Fatalf("recv: %v", err)
	}
	elapsed := time.Since(began)
	snd.waitLine(t, fallbackRe, time.Second)
	snd.waitLine(t, regexp.MustCompile(`delivered to [0-9a-f]{8} via relay`), time.Second)
	if sha := fileSHA(t, filepath.Join(out, "random.bin")); sha != want {
		t.Fatalf("received SHA-256 %s, want %s", sha, want)
	}
	if n := refused.Load(); n < 4 {
		t.Errorf("middlebox refused %d upgrades, want >= 4 (one per process)", n)
	}
	t.Logf("%d MiB over the HTTP fallback in %v (%.1f MB/s)", size>>20, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds())
}
