package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Self-signed certificates from --tls auto.
const (
	certLifetime = 397 * 24 * time.Hour // under the 398 days browsers and iOS accept
	certRenew    = 7 * 24 * time.Hour   // make a new one when less is left
	certFile     = "cert.pem"
	keyFile      = "key.pem"
)

// certNames are the names and addresses a certificate must cover.
type certNames struct {
	DNS []string
	IPs []net.IP
}

// namesFor lists what a server bound to host should be reachable as: the
// host itself (every interface address when it is unspecified), loopback,
// localhost, and this machine's host name (also as NAME.local for mDNS).
func namesFor(host string) certNames {
	var n certNames
	addIP := func(ip net.IP) {
		if !slices.ContainsFunc(n.IPs, ip.Equal) {
			n.IPs = append(n.IPs, ip)
		}
	}
	addDNS := func(name string) {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if name != "" && !slices.Contains(n.DNS, name) {
			n.DNS = append(n.DNS, name)
		}
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		for _, a := range interfaceIPs() {
			addIP(a)
		}
	case ip != nil:
		addIP(ip)
	default:
		addDNS(host)
	}
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.IPv6loopback)
	addDNS("localhost")
	if h, err := os.Hostname(); err == nil && h != "" && !strings.Contains(h, " ") {
		addDNS(h)
		if !strings.Contains(h, ".") {
			addDNS(h + ".local")
		}
	}
	return n
}

// interfaceIPs returns the addresses of the up interfaces.
func interfaceIPs() []net.IP {
	var ips []net.IP
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				ips = append(ips, ipn.IP)
			}
		}
	}
	return ips
}

// autoCert returns a self-signed certificate for names: the one kept in
// dir when it covers them and has long enough to live, else a new one
// (saved in dir when dir is set). fresh says whether it was just made.
func autoCert(dir string, names certNames, now time.Time) (cert tls.Certificate, fresh bool, err error) {
	if dir != "" {
		c, err := loadCert(dir)
		switch {
		case err == nil && covers(c.Leaf, names) && now.Add(certRenew).Before(c.Leaf.NotAfter):
			return c, false, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return tls.Certificate{}, false, err
		}
	}
	certPEM, keyPEM, err := makeCert(names, now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if dir != "" {
		if err := saveCert(dir, certPEM, keyPEM); err != nil {
			return tls.Certificate{}, false, err
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls auto: %w", err)
	}
	return c, true, nil
}

// makeCert makes an ECDSA P-256 self-signed server certificate.
func makeCert(names certNames, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls auto: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls auto: serial: %w", err)
	}
	cn := "cloakroom"
	if len(names.DNS) > 0 {
		cn = "cloakroom " + names.DNS[len(names.DNS)-1]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Cloakroom (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names.DNS,
		IPAddresses:           names.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls auto: certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls auto: key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

func loadCert(dir string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return c, fmt.Errorf("tls auto: %s: %w", dir, err)
	}
	return c, nil // Go 1.23+ fills c.Leaf
}

func saveCert(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tls auto: %w", err)
	}
	// The key first: a certificate without its key would not load.
	if err := writeFileAtomic(filepath.Join(dir, keyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, certFile), certPEM, 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("tls auto: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls auto: %w", err)
	}
	return nil
}

// covers reports whether leaf names every name and address in n.
func covers(leaf *x509.Certificate, n certNames) bool {
	if leaf == nil {
		return false
	}
	for _, ip := range n.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	for _, d := range n.DNS {
		if !slices.Contains(leaf.DNSNames, d) {
			return false
		}
	}
	return true
}

// fingerprint is the certificate's SHA-256 as browsers show it (AB:CD:…).
func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hexes, ":")
}

// serverTLS is the TLS configuration of the HTTPS and TURN-over-TLS
// listeners: HTTP/1.1 only (WebSocket upgrades need it), TLS 1.2+.
func serverTLS(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}
