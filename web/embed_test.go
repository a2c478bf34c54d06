package web

import (
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
		{"/", "text/html", `<script type="module" src="js/app.js">`},
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
