package turn

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// TestDefaultAddrPort: DefaultAddr spells DefaultPort (a string constant
// cannot be built from the number).
func TestDefaultAddrPort(t *testing.T) {
	_, port, err := net.SplitHostPort(DefaultAddr)
	if err != nil || port != strconv.Itoa(DefaultPort) {
		t.Fatalf("DefaultAddr %q, DefaultPort %d", DefaultAddr, DefaultPort)
	}
}

// TestValidate: Validate refuses what New refuses, without listening.
func TestValidate(t *testing.T) {
	if err := (Config{Secret: []byte("s"), PublicIP: net.ParseIP("::1")}).Validate(); !errors.Is(err, ErrPublicIP) {
		t.Fatalf("IPv6 PublicIP: %v, want ErrPublicIP", err)
	}
	if err := (Config{}).Validate(); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("no secret: %v, want ErrNoSecret", err)
	}
	if err := (Config{Secret: []byte("s"), Addr: "127.0.0.1:1"}).Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
