package web

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cloakroom/internal/crypto"
)

// TestPreviewBoundsJSMatchGo: the page's poster and duration bounds
// (static/js/crypto/plaintext.js) are internal/crypto's.
func TestPreviewBoundsJSMatchGo(t *testing.T) {
	b, err := os.ReadFile("static/js/crypto/plaintext.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"MAX_POSTER_BYTES":    crypto.MaxPosterBytes,
		"MAX_DURATION":        crypto.MaxDuration,
		"MAX_POSTER_MANIFEST": crypto.MaxPosterManifest,
	} {
		m := regexp.MustCompile(`export const ` + name + ` = ([^;]+);`).FindSubmatch(b)
		if m == nil {
			t.Errorf("%s not found in plaintext.js", name)
			continue
		}
		if got, ok := jsFloat(string(m[1])); !ok || got != want {
			t.Errorf("plaintext.js %s = %s, Go says %v", name, m[1], want)
		}
	}
}

// jsFloat evaluates a literal (1e7 too) or "A << B".
func jsFloat(s string) (float64, bool) {
	if a, c, ok := strings.Cut(s, "<<"); ok {
		x, err1 := strconv.Atoi(strings.TrimSpace(a))
		y, err2 := strconv.Atoi(strings.TrimSpace(c))
		return float64(x << y), err1 == nil && err2 == nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f, err == nil
}
