// Package web holds the browser client: static files embedded into the
// binary, so `go run .` needs no build step. Pinned third-party browser
// libraries live under vendor/ (refreshed from npm by scripts/vendor-refresh)
// and are served under /vendor/.
package web

import (
	"bytes"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static vendor
var files embed.FS

// csp is the page's Content-Security-Policy: scripts, workers and styles only
// from this origin (no inline script), images and media also from blob: URLs
// (received files), and the camera is reached through getUserMedia, which
// the CSP does not govern.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler serves the embedded web client at "/" and the vendored libraries at
// "/vendor/", with security headers: a strict Content-Security-Policy, no
// referrer (the room secret lives in the URL fragment), no sniffing, no
// framing.
func Handler() http.Handler {
	static := http.FileServerFS(sub("static"))
	vendor := http.StripPrefix("/vendor", http.FileServerFS(sub("vendor")))
	index := indexWithIntegrity()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
			return
		}
		if r.URL.Path == "/share" {
			shareUnavailable(w, r)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".webmanifest") {
			// Not in every system's MIME table (Go's own has none).
			h.Set("Content-Type", "application/manifest+json")
		}
		if r.URL.Path == "/sw.js" {
			// The service worker of "watch while it arrives"
			// (docs/STREAMING.md): always revalidated, so a new
			// version replaces the old one on the next visit.
			h.Set("Cache-Control", "no-cache")
		}
		if strings.HasPrefix(r.URL.Path, "/vendor/") {
			vendor.ServeHTTP(w, r)
			return
		}
		static.ServeHTTP(w, r)
	})
}

// shareUnavailable answers the manifest's share target (POST /share) when
// it reaches the server: the page's service worker answers it itself once
// active (docs/PWA.md), so this is a first share before any visit, or a
// browser without service workers. The shared files must never reach the
// server: the body is not read (the connection is closed after the answer),
// and the page is sent to /?share=unavailable, where it explains. A GET
// /share (someone opening the address) goes to the start page.
func shareUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	target := "/"
	if r.Method == http.MethodPost {
		target = "/?share=unavailable"
		w.Header().Set("Connection", "close")
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// integrityTags are the page's entry points, given Subresource Integrity
// attributes: a cache or proxy that serves a stale or altered script or
// stylesheet beside this page is refused by the browser. (The modules they
// import are not covered: ES module imports take no integrity attribute
// without an inline import map, which the CSP forbids. The server itself is
// trusted for the page, see docs/SECURITY.md.)
var integrityTags = []struct{ tag, file string }{
	{`<link rel="stylesheet" href="style.css">`, "static/style.css"},
	{`<script src="js/errlog.js"></script>`, "static/js/errlog.js"},
	{`<script type="module" src="js/app.js"></script>`, "static/js/app.js"},
}

// indexWithIntegrity returns index.html with integrity attributes on its
// entry points.
func indexWithIntegrity() []byte {
	page, err := files.ReadFile("static/index.html")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	for _, it := range integrityTags {
		body, err := files.ReadFile(it.file)
		if err != nil || !bytes.Contains(page, []byte(it.tag)) {
			panic(fmt.Sprintf("web: index.html entry point %s missing", it.file))
		}
		sum := sha512.Sum384(body)
		attr := ` integrity="sha384-` + base64.StdEncoding.EncodeToString(sum[:]) + `"`
		i := strings.Index(it.tag, ">")
		tagged := it.tag[:i] + attr + it.tag[i:]
		page = bytes.Replace(page, []byte(it.tag), []byte(tagged), 1)
	}
	return page
}

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return f
}
