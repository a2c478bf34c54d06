package main

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// TestProxyAnnounced: the CLI names the proxy it goes through once, without
// its credentials, and says nothing for targets it reaches directly.
func TestProxyAnnounced(t *testing.T) {
	proxy, _ := url.Parse("http://member:s3cret@10.1.0.2:3128")
	pick := func(target *url.URL) (*url.URL, error) {
		if target.Hostname() == "direct.example" {
			return nil, nil
		}
		return proxy, nil
	}
	var stderr bytes.Buffer
	f := announced(pick, &stderr)
	for _, target := range []string{"https://direct.example:443", "https://10.1.0.1:443", "https://10.1.0.1:5349", "http://10.1.0.1:3478"} {
		u, _ := url.Parse(target)
		if _, err := f(u); err != nil {
			t.Fatal(err)
		}
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "through HTTP proxy http://10.1.0.2:3128 (with credentials)") || !strings.Contains(out, "first for 10.1.0.1:443") {
		t.Errorf("said %q, want one line naming the proxy and the first target", out)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "member") {
		t.Errorf("said the proxy's credentials: %q", out)
	}
}
