// Package web holds the browser client: static files embedded into the
// binary, so `go run .` needs no build step. Pinned third-party browser
// libraries live under vendor/ (refreshed from npm by scripts/vendor-refresh)
// and are served under /vendor/.
package web

import (
	"embed"
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if strings.HasPrefix(r.URL.Path, "/vendor/") {
			vendor.ServeHTTP(w, r)
			return
		}
		static.ServeHTTP(w, r)
	})
}

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return f
}
