package web

import (
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
