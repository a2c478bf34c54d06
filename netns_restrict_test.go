package main

// The restrictive test networks of issue 16, for a member: (a) UDP
// blocked, (b) only TCP to the server's address port 443, (c) only TCP to
// an HTTP CONNECT proxy, (d) only HTTP through a middlebox that refuses
// WebSocket upgrades. Each is a member namespace whose nftables rules make
// it so; the test checks that it is so before using it.
//
// Topology (B a free second octet, N the test's pid; no forwarding
// anywhere, so namespaces reach only what their own veth leads to):
//
//	rnN-s (the "internet"): lo  10.B.0.1/32  the server (HTTPS 443, TURN 3478, TURN-TLS 5349)
//	                            10.B.0.2/32  the CONNECT proxy (:3128, in the test process)
//	                            10.B.0.3/32  the middlebox (HTTPS :443, in the test process)
//	                        rsN-X  10.B.i.1/24  veth ── rmN-X  10.B.i.2/24  in netns rnN-X
//	rnN-X (a member): lo up; route 10.B.0.0/24 via 10.B.i.1; nftables table "restrict"
//
// X is a, b, c, d (the restricted networks) and o (open: no rules). The
// server namespace reaches every member's veth address (the TURN server
// relays to them), members reach nothing of each other's.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// restrictNets is the topology above.
type restrictNets struct {
	srvNS     string
	server    string // the server's address
	proxy     string // the CONNECT proxy's address
	middlebox string // the middlebox's address
	members   map[string]memberNet
}

// memberNet is one member namespace.
type memberNet struct {
	ns      string
	addr    string // its veth address
	hostDev string // the server side of its veth, in srvNS
}

const (
	proxyPort   = 3128
	turnPort    = 3478
	turnTLSPort = 5349
)

// nftRules are each network's rules, for the member's namespace ({server},
// {proxy} and {middlebox} stand for their addresses).
var nftRules = map[string]string{
	"a": `table inet restrict {
	chain out { type filter hook output priority 0; policy accept; oif "lo" accept; meta l4proto udp counter drop; }
	chain in { type filter hook input priority 0; policy accept; iif "lo" accept; meta l4proto udp counter drop; }
}`,
	"b": `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {server} tcp dport 443 counter accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
	"c": `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {proxy} tcp dport 3128 counter accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
	"d": `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {middlebox} tcp dport 443 counter accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
	"o": "",
}

// setupRestrictNets builds the topology; everything goes in t.Cleanup. It
// fails (never skips) without root, ip or nft.
func setupRestrictNets(t *testing.T) *restrictNets {
	t.Helper()
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the restrictive-network tests need iproute2 and nftables (scripts/test installs them)", tool)
		}
	}
	pid, b := os.Getpid(), freeOctet(t)
	n := &restrictNets{
		srvNS: fmt.Sprintf("rn%d-s", pid), server: fmt.Sprintf("10.%d.0.1", b),
		proxy: fmt.Sprintf("10.%d.0.2", b), middlebox: fmt.Sprintf("10.%d.0.3", b),
		members: map[string]memberNet{},
	}
	if out, err := ipCmd("netns", "add", n.srvNS); err != nil {
		t.Fatalf("ip netns add %s: %v: %s\nthis test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; run it as root", n.srvNS, err, out)
	}
	cleanupIP(t, "netns", "del", n.srvNS)
	mustIP(t, "-n", n.srvNS, "link", "set", "lo", "up")
	for _, a := range []string{n.server, n.proxy, n.middlebox} {
		mustIP(t, "-n", n.srvNS, "addr", "add", a+"/32", "dev", "lo")
	}
	mustNetnsExec(t, n.srvNS, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	for i, x := range []string{"a", "b", "c", "d", "o"} {
		m := memberNet{ns: fmt.Sprintf("rn%d-%s", pid, x), addr: fmt.Sprintf("10.%d.%d.2", b, i+1), hostDev: fmt.Sprintf("rs%d-%s", pid, x)}
		gw, dev := fmt.Sprintf("10.%d.%d.1", b, i+1), fmt.Sprintf("rm%d-%s", pid, x)
		mustIP(t, "netns", "add", m.ns)
		cleanupIP(t, "netns", "del", m.ns)
		mustIP(t, "-n", n.srvNS, "link", "add", m.hostDev, "type", "veth", "peer", "name", dev, "netns", m.ns)
		mustIP(t, "-n", n.srvNS, "addr", "add", gw+"/24", "dev", m.hostDev)
		mustIP(t, "-n", n.srvNS, "link", "set", m.hostDev, "up")
		mustIP(t, "-n", m.ns, "link", "set", "lo", "up")
		mustIP(t, "-n", m.ns, "addr", "add", m.addr+"/24", "dev", dev)
		mustIP(t, "-n", m.ns, "link", "set", dev, "up")
		mustIP(t, "-n", m.ns, "route", "add", fmt.Sprintf("10.%d.0.0/24", b), "via", gw)
		if rules := nftRules[x]; rules != "" {
			cmd := exec.Command("ip", "netns", "exec", m.ns, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(strings.NewReplacer("{server}", n.server, "{proxy}", n.proxy, "{middlebox}", n.middlebox).Replace(rules))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft in %s: %v: %s", m.ns, err, out)
			}
		}
		n.members[x] = m
	}
	return n
}

func mustNetnsExec(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %v: %v: %s", ns, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// devBytes reads a device's rx and tx byte counters in namespace ns (ip
// netns exec mounts that namespace's /sys).
func devBytes(t *testing.T, ns, dev string) (rx, tx int64) {
	t.Helper()
	out := mustNetnsExec(t, ns, "cat", "/sys/class/net/"+dev+"/statistics/rx_bytes", "/sys/class/net/"+dev+"/statistics/tx_bytes")
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("counters of %s in %s: %q", dev, ns, out)
	}
	rx, _ = strconv.ParseInt(f[0], 10, 64)
	tx, _ = strconv.ParseInt(f[1], 10, 64)
	return rx, tx
}

// dialIn dials TCP from namespace ns.
func dialIn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

// tcpReaches reports whether a TCP connection from ns to addr opens.
func tcpReaches(ns, addr string) bool {
	c, err := dialIn(ns, addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// listenIn listens on TCP addr in namespace ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// testCA is a certificate authority and a server certificate it signed for
// the server's and the middlebox's addresses, as PEM files.
type testCA struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	cert                      tls.Certificate
}

func newTestCA(t *testing.T, ips ...string) *testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cloakroom test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cloakroom test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	ca := &testCA{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	ca.pool.AddCert(caCert)
	for file, block := range map[string]*pem.Block{
		ca.caFile: {Type: "CERTIFICATE", Bytes: caDER}, ca.certFile: {Type: "CERTIFICATE", Bytes: der},
		ca.keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if ca.cert, err = tls.LoadX509KeyPair(ca.certFile, ca.keyFile); err != nil {
		t.Fatal(err)
	}
	return ca
}

// connectProxy is an HTTP CONNECT proxy that wants basic auth, tunnels
// only to the ports it allows, and counts tunnels and bytes per target.
type connectProxy struct {
	ns, user, pass string
	allow          map[string]bool // target ports
	ln             net.Listener

	mu      sync.Mutex
	tunnels map[string]int   // by target host:port
	bytes   map[string]int64 // both ways, by target
	refused map[string]int   // by target
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func startConnectProxy(t *testing.T, ns, addr string, ports ...int) *connectProxy {
	t.Helper()
	p := &connectProxy{ns: ns, user: "member", pass: "pa:ss word", allow: map[string]bool{},
		tunnels: map[string]int{}, bytes: map[string]int64{}, refused: map[string]int{}, conns: map[net.Conn]bool{}}
	for _, port := range ports {
		p.allow[strconv.Itoa(port)] = true
	}
	p.ln = listenIn(t, ns, addr)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's URL with its credentials, for HTTPS_PROXY.
func (p *connectProxy) URL() string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(p.user, p.pass), Host: p.ln.Addr().String()}).String()
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			p.handle(c)
		}()
	}
}

func (p *connectProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *connectProxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	user, pass, ok := parseProxyAuth(req.Header.Get("Proxy-Authorization"))
	_, port, _ := net.SplitHostPort(req.Host)
	switch {
	case req.Method != http.MethodConnect:
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	case !ok || user != p.user || pass != p.pass:
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n\r\n")
		return
	case !p.allow[port]:
		p.count(p.refused, req.Host, 1)
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
		return
	}
	up, err := dialIn(p.ns, req.Host, 5*time.Second)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	p.count(p.tunnels, req.Host, 1)
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.MultiWriter(up, p.counter(req.Host)), br)
		up.Close()
	}()
	_, _ = io.Copy(io.MultiWriter(c, p.counter(req.Host)), up)
	c.Close()
	<-done
}

// counter counts bytes written to it as the tunnel's to target.
func (p *connectProxy) counter(target string) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		p.bytes[target] += int64(len(b))
		p.mu.Unlock()
		return len(b), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *connectProxy) count(m map[string]int, k string, n int) {
	p.mu.Lock()
	m[k] += n
	p.mu.Unlock()
}

// stats returns copies of the counters.
func (p *connectProxy) stats() (tunnels map[string]int, bytes map[string]int64, refused map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tunnels, bytes, refused = map[string]int{}, map[string]int64{}, map[string]int{}
	for k, v := range p.tunnels {
		tunnels[k] = v
	}
	for k, v := range p.bytes {
		bytes[k] = v
	}
	for k, v := range p.refused {
		refused[k] = v
	}
	return tunnels, bytes, refused
}

func parseProxyAuth(h string) (user, pass string, ok bool) {
	r := &http.Request{Header: http.Header{"Authorization": {h}}}
	return r.BasicAuth()
}

// middlebox is an HTTPS reverse proxy to the server that refuses WebSocket
// upgrades (403) and passes every other request, streaming responses.
type middlebox struct {
	mu       sync.Mutex
	requests int
	refused  int
}

func startMiddlebox(t *testing.T, ns, addr, upstream string, ca *testCA) *middlebox {
	t.Helper()
	mb := &middlebox{}
	up, _ := url.Parse(upstream)
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(up); r.SetXForwarded() },
		FlushInterval: -1,
		Transport: &http.Transport{
			DialContext:     func(_ context.Context, _, a string) (net.Conn, error) { return dialIn(ns, a, 5*time.Second) },
			TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		},
	}
	// ErrorLog: the network checks open and close TCP connections to it.
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mb.mu.Lock()
		mb.requests++
		refuse := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
		if refuse {
			mb.refused++
		}
		mb.mu.Unlock()
		if refuse {
			http.Error(w, "WebSocket refused by the middlebox", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln := tls.NewListener(listenIn(t, ns, addr), &tls.Config{Certificates: []tls.Certificate{ca.cert}, NextProtos: []string{"http/1.1"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return mb
}

func (mb *middlebox) counts() (requests, refused int) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.requests, mb.refused
}
