package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		relayMax, relay, live, want int64
	}{
		{256 * mb, 0, 4 * mb, 256*mb + 8*mb + 8*mb + 8*mb},          // idle: cap + 1/32 + 2×rest + slack
		{256 * mb, 256 * mb, 260 * mb, 256*mb + 8*mb + 8*mb + 8*mb}, // full relay: the relay is not doubled
		{256 * mb, 0, 100 * mb, 256*mb + 8*mb + 200*mb + 8*mb},      // many connections: they are
		{1 * mb, 0, 0, 32 * mb},                                     // the floor
		{64 * mb, 70 * mb, 60 * mb, 64*mb + 2*mb + 8*mb},            // live sampled before the relay grew
	} {
		if got := memoryLimit(tc.relayMax, tc.relay, tc.live); got != tc.want {
			t.Errorf("memoryLimit(%d, %d, %d) = %d MiB, want %d MiB", tc.relayMax/mb, tc.relay/mb, tc.live/mb, got/mb, tc.want/mb)
		}
	}
}

func TestCheckTURNURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"turn:turn.example.com:3478?transport=udp": true,
		"turn:turn.example.com":                    true,
		"turns:turn.example.com:443?transport=tcp": true,
		"turn:192.0.2.1:3478":                      true,
		"stun:turn.example.com":                    false,
		"turn://turn.example.com":                  false,
		"turn:":                                    false,
		"turn:host?transport=sctp":                 false,
		"https://turn.example.com":                 false,
		"turn:user@host":                           false,
	} {
		if err := checkTURNURL(u); (err == nil) != ok {
			t.Errorf("checkTURNURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestAutoCert(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	names := certNames{DNS: []string{"localhost", "laptop.local"}, IPs: []net.IP{net.ParseIP("192.168.1.5"), net.ParseIP("127.0.0.1")}}
	c1, fresh, err := autoCert(dir, names, now)
	if err != nil || !fresh {
		t.Fatalf("first: fresh %v, err %v", fresh, err)
	}
	leaf := c1.Leaf
	if leaf == nil || leaf.PublicKeyAlgorithm.String() != "ECDSA" || !covers(leaf, names) {
		t.Fatalf("certificate %+v does not cover %+v", leaf, names)
	}
	if err := leaf.VerifyHostname("192.168.1.5"); err != nil {
		t.Fatal(err)
	}
	if life := leaf.NotAfter.Sub(now); life > 398*24*time.Hour {
		t.Errorf("lifetime %v: browsers refuse more than 398 days", life)
	}
	c2, fresh, err := autoCert(dir, names, now.Add(time.Hour))
	if err != nil || fresh || fingerprint(c2) != fingerprint(c1) {
		t.Fatalf("second: fresh %v, err %v: want the kept certificate", fresh, err)
	}
	// A new address (the laptop moved to another network): a new certificate.
	moved := names
	moved.IPs = append(moved.IPs[:1:1], net.ParseIP("10.0.0.7"))
	if c3, fresh, err := autoCert(dir, moved, now); err != nil || !fresh || fingerprint(c3) == fingerprint(c1) {
		t.Fatalf("moved: fresh %v, err %v", fresh, err)
	}
	// Close to expiry: renewed.
	if _, fresh, err := autoCert(dir, moved, now.Add(certLifetime-certRenew/2)); err != nil || !fresh {
		t.Fatalf("near expiry: fresh %v, err %v", fresh, err)
	}
}

func TestNamesForUnspecified(t *testing.T) {
	n := namesFor("0.0.0.0")
	if len(n.IPs) < 2 {
		t.Fatalf("names for 0.0.0.0: %+v, want every interface address", n)
	}
	for _, want := range []string{"127.0.0.1", "::1"} {
		found := false
		for _, ip := range n.IPs {
			found = found || ip.Equal(net.ParseIP(want))
		}
		if !found {
			t.Errorf("%s missing from %v", want, n.IPs)
		}
	}
	if h := namesFor("cloak.example"); h.DNS[0] != "cloak.example" {
		t.Errorf("host name not first: %v", h.DNS)
	}
}

func TestWriteMetrics(t *testing.T) {
	var b bytes.Buffer
	err := writeMetrics(&b, []metric{
		{name: "a_total", help: "A.", typ: "counter", labels: `{k="x"}`, value: 1},
		{name: "a_total", help: "A.", typ: "counter", labels: `{k="y"}`, value: 2.5},
		{name: "b", help: "B.", typ: "gauge", value: 3e9},
	})
	want := "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"x\"} 1\na_total{k=\"y\"} 2.5\n# HELP b B.\n# TYPE b gauge\nb 3e+09\n"
	if err != nil || b.String() != want {
		t.Fatalf("got %q, want %q (err %v)", b.String(), want, err)
	}
	if strings.Count(b.String(), "# TYPE a_total") != 1 {
		t.Fatal("family header repeated")
	}
}

// TestServeUploadRateFlags: public addresses get 128 MiB/s by default, LAN
// and loopback addresses no limit; 0 means no limit for either.
func TestServeUploadRateFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		public, lan int64
	}{
		{nil, 128 << 20, noLimit},
		{[]string{"--relay-upload-rate-lan", "64MiB"}, 128 << 20, 64 << 20},
		{[]string{"--relay-upload-rate", "0"}, 0, noLimit},
		{[]string{"--relay-upload-rate", "1GiB", "--relay-upload-rate-lan", "0"}, 1 << 30, noLimit},
	} {
		cfg, err := parseServeFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if cfg.Sig.UploadRate != tc.public || cfg.Sig.UploadRateLAN != tc.lan {
			t.Errorf("%q: upload rates %d, LAN %d; want %d, %d", tc.args, cfg.Sig.UploadRate, cfg.Sig.UploadRateLAN, tc.public, tc.lan)
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("%q: %v", tc.args, err)
		}
	}
}

// TestMainPortTURNURL: the turns: URL of the HTTPS port names the server
// as the client's Host did; a Host that is not a plain name or address
// gets the listener's.
func TestMainPortTURNURL(t *testing.T) {
	m := &mainPortTURN{host: "192.0.2.7", port: "8443"}
	for host, want := range map[string]string{
		"cloak.example.org":       "turns:cloak.example.org:443?transport=tcp",
		"cloak.example.org:8443":  "turns:cloak.example.org:8443?transport=tcp",
		"Cloak.Example.org.":      "turns:Cloak.Example.org.:443?transport=tcp",
		"192.168.1.5:8443":        "turns:192.168.1.5:8443?transport=tcp",
		"[2001:db8::1]:443":       "turns:[2001:db8::1]:443?transport=tcp",
		"[2001:db8::1]":           "turns:[2001:db8::1]:443?transport=tcp",
		"":                        "turns:192.0.2.7:8443?transport=tcp",
		"evil.org?transport=udp":  "turns:192.0.2.7:8443?transport=tcp",
		"a b:443":                 "turns:192.0.2.7:8443?transport=tcp",
		"host:0":                  "turns:192.0.2.7:8443?transport=tcp",
		"host:99999":              "turns:192.0.2.7:8443?transport=tcp",
		"host:+443":               "turns:192.0.2.7:8443?transport=tcp",
		"user@host:443":           "turns:192.0.2.7:8443?transport=tcp",
		"-bad-.example.org":       "turns:192.0.2.7:8443?transport=tcp",
		strings.Repeat("a", 64):   "turns:192.0.2.7:8443?transport=tcp",
		"host.example.org:443/ws": "turns:192.0.2.7:8443?transport=tcp",
	} {
		if got := m.url(host); got != want {
			t.Errorf("url(%q) = %s, want %s", host, got, want)
		}
	}
}
