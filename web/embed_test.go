package web

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHandlerServesClientAndVendor(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		path, typ, body string
	}{
		{"/", "text/html", `<script type="module" src="js/app.js" integrity="sha384-`},
		{"/", "text/html", `<link rel="icon" href="favicon.svg" type="image/svg+xml">`}, // no /favicon.ico 404 on every load
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/js/qr.js", "text/javascript", "../vendor/qrcode-generator/qrcode.mjs"},
		{"/js/qr-worker.js", "text/javascript", "importScripts("},
		{"/vendor/qrcode-generator/qrcode.mjs", "text/javascript", "export default qrcode"},
		{"/vendor/qrcode-generator/LICENSE", "text/plain", "Copyright (c) 2009 Kazuhiko Arase"},
		{"/vendor/jsqr/jsQR.js", "text/javascript", `root["jsQR"] = factory()`},
		{"/vendor/jsqr/LICENSE", "text/plain", "Apache License"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.typ) {
				t.Errorf("Content-Type %q, want %s (modules need a JavaScript type under nosniff)", ct, tc.typ)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
				t.Errorf("CSP %q", csp)
			}
		})
	}
}

func TestHandlerNotFound(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, p := range []string{"/vendor/nope.js", "/vendor/../embed.go", "/static/index.html"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("%s: status 200, want an error", p)
		}
	}
}

// TestIntegrityMatchesServedFiles: the integrity attributes on the page's
// entry points are the SHA-384 of the bytes the server serves for them, so
// Chromium loads them (a wrong hash would leave a blank page).
func TestIntegrityMatchesServedFiles(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, res.StatusCode)
		}
		return string(b)
	}
	page := get("/")
	for _, path := range []string{"style.css", "js/app.js"} {
		sum := sha512.Sum384([]byte(get("/" + path)))
		want := `"` + path + `" integrity="sha384-` + base64.StdEncoding.EncodeToString(sum[:]) + `"`
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestServiceWorkerServed: /sw.js (docs/STREAMING.md) is served from the
// root (so its scope may be "/") with a JavaScript type (browsers refuse a
// service worker of another type), no-cache (a new version is picked up on
// the next visit), and the same strict CSP as every response.
func TestServiceWorkerServed(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/sw.js")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q, want text/javascript", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	if !strings.Contains(string(body), "'/stream/'") {
		t.Errorf("body is not the streaming service worker")
	}
	if got := res.Header.Get("Content-Security-Policy"); got != csp || strings.Contains(got, "unsafe") {
		t.Errorf("CSP %q, want %q", got, csp)
	}
	// Other files are not marked no-cache by this rule.
	res2, err := http.Get(srv.URL + "/js/app.js")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.Header.Get("Cache-Control") == "no-cache" {
		t.Errorf("/js/app.js is no-cache too")
	}
}

func TestHandlerManifestAndIcons(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/manifest.webmanifest")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/manifest+json" {
		t.Errorf("Content-Type %q, want application/manifest+json", ct)
	}
	var m struct {
		StartURL string `json:"start_url"`
		Icons    []struct {
			Src, Sizes, Type, Purpose string
		} `json:"icons"`
		ShareTarget struct {
			Action, Method, Enctype string
		} `json:"share_target"`
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.StartURL != "/" || m.ShareTarget.Action != "/share" || m.ShareTarget.Method != "POST" || m.ShareTarget.Enctype != "multipart/form-data" {
		t.Errorf("manifest %+v", m)
	}
	for _, ic := range m.Icons {
		r, err := http.Get(srv.URL + ic.Src)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), ic.Type) {
			t.Errorf("%s: %d %q, want %s", ic.Src, r.StatusCode, r.Header.Get("Content-Type"), ic.Type)
			continue
		}
		if ic.Type == "image/png" {
			cfg, err := png.DecodeConfig(bytes.NewReader(body))
			if err != nil || fmt.Sprintf("%dx%d", cfg.Width, cfg.Height) != ic.Sizes {
				t.Errorf("%s: %v %dx%d, want %s", ic.Src, err, cfg.Width, cfg.Height, ic.Sizes)
			}
		}
	}
	page, _ := http.Get(srv.URL + "/")
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	for _, want := range []string{`<link rel="manifest" href="manifest.webmanifest">`, `<link rel="apple-touch-icon" href="icons/apple-touch-icon.png">`, `<meta name="theme-color"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// countingReader counts the bytes the server read of a request body.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestShareWithoutServiceWorker(t *testing.T) {
	// The handler itself, with a body it must not read.
	var read atomic.Int64
	body := countingReader{strings.NewReader(strings.Repeat("x", 1<<20)), &read}
	req := httptest.NewRequest(http.MethodPost, "/share", body)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?share=unavailable" {
		t.Fatalf("POST /share: %d Location %q, want 303 /?share=unavailable", rec.Code, rec.Header().Get("Location"))
	}
	if n := read.Load(); n != 0 {
		t.Errorf("the handler read %d bytes of the shared body", n)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	// GET /share: the start page.
	rec = httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/share", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Errorf("GET /share: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	// Through a real server: a multipart upload gets its answer (the
	// connection may close before the body is all sent; that is fine).
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Post(srv.URL+"/share", "multipart/form-data; boundary=b", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/?share=unavailable" {
		t.Errorf("served POST /share: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}
