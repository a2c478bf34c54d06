package main

// One port for HTTPS, WSS and TURN over TLS (--turn-tls-mux, on with TLS):
// real clients of each on the one port of one `serve`.

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestServeOnePort: on the --addr port of one `serve --tls auto`, GET /
// returns the page, a member joins over WSS and is given a turns: URL for
// that port, and coturn's turnutils_uclient relays over TURN-TLS there with
// the member's credentials.
func TestServeOnePort(t *testing.T) {
	srv := start(t, "serve", "--addr", "127.0.0.1:0", "--tls", "auto", "--tls-dir", t.TempDir(),
		"--metrics-addr", "127.0.0.1:0", "--turn-port", strconv.Itoa(freePort(t)))
	metrics := srv.waitLine(t, metricsRe, 20*time.Second)[1]
	url := srv.waitLine(t, httpsRe, 5*time.Second)[1]
	fp := srv.waitLine(t, fingerprintRe, 5*time.Second)[1]
	port := url[strings.LastIndexByte(url, ':')+1:]
	turns := "turns:127.0.0.1:" + port + "?transport=tcp"
	srv.waitLine(t, regexp.MustCompile(regexp.QuoteMeta(turns+" (the HTTPS port)")), 5*time.Second)

	pinned := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		if got := colonHex(sha256.Sum256(cs.PeerCertificates[0].Raw)); got != fp {
			return fmt.Errorf("certificate %s, printed %s", got, fp)
		}
		return nil
	}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: pinned}}
	resp, err := hc.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<title>") {
		t.Fatalf("GET / on the shared port: %d\n%.200s", resp.StatusCode, page)
	}

	_, w := dialJoin(t, &websocket.Dialer{TLSClientConfig: pinned}, url, newRoomCreds())
	if len(w.ICE) != 1 || !slices.Contains(w.ICE[0].URLs, turns) {
		t.Fatalf("welcome ICE %+v, want %s", w.ICE, turns)
	}
	portN, _ := strconv.Atoi(port)
	out, code := runUclient(t, portN, "-t", "-S", "-u", w.ICE[0].Username, "-w", w.ICE[0].Credential,
		"-y", "-c", "-n", "20", "-l", "500", "-m", "1", "-z", "1")
	if code != 0 || !regexp.MustCompile(`tot_recv_msgs=[1-9]`).MatchString(out) || strings.Contains(out, "error 401") {
		t.Fatalf("turnutils_uclient -S on the HTTPS port: exit %d\n%s", code, out)
	}

	m := scrape(t, metrics)
	turnConns := m[`cloakroom_tls_port_connections_total{to="turn",by="alpn"}`] + m[`cloakroom_tls_port_connections_total{to="turn",by="sniff"}`]
	httpsConns := m[`cloakroom_tls_port_connections_total{to="https",by="alpn"}`] + m[`cloakroom_tls_port_connections_total{to="https",by="sniff"}`]
	if turnConns < 2 || httpsConns < 2 || m["cloakroom_turn_relayed_bytes_total"] == 0 {
		t.Fatalf("metrics: %v TURN and %v HTTPS connections on the port, %v bytes relayed; want 2+, 2+ and some",
			turnConns, httpsConns, m["cloakroom_turn_relayed_bytes_total"])
	}
	for k, v := range m {
		if strings.HasPrefix(k, "cloakroom_tls_port") {
			t.Logf("%s %v", k, v)
		}
	}
}

// TestServeOnePortOff: with --turn-tls-mux=false the port serves HTTPS
// only: members get no turns: URL, and a TLS client that offers only
// "stun.turn" is refused.
func TestServeOnePortOff(t *testing.T) {
	srv := start(t, "serve", "--addr", "127.0.0.1:0", "--tls", "auto", "--metrics-addr", "",
		"--turn-port", strconv.Itoa(freePort(t)), "--turn-tls-mux=false")
	url := srv.waitLine(t, httpsRe, 20*time.Second)[1]
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own self-signed server
	_, w := dialJoin(t, &websocket.Dialer{TLSClientConfig: insecure}, url, newRoomCreds())
	for _, u := range w.ICE[0].URLs {
		if strings.HasPrefix(u, "turns:") {
			t.Fatalf("welcome ICE %v: a turns: URL with --turn-tls-mux=false", w.ICE[0].URLs)
		}
	}
	alpn := insecure.Clone()
	alpn.NextProtos = []string{"stun.turn"}
	if c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), alpn); err == nil {
		c.Close()
		t.Fatalf("a TURN-only ALPN was accepted (%q) with --turn-tls-mux=false", c.ConnectionState().NegotiatedProtocol)
	}
	for _, l := range srv.output() {
		if strings.Contains(l, "the HTTPS port") {
			t.Fatalf("output announces TURN on the HTTPS port: %s", l)
		}
	}
}
