package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"cloakroom/internal/protocol"
)

// TestCLIByteSizeFlag: sizes parse when the flag is set; a bad one is a
// usage error naming the flag, before any command runs.
func TestCLIByteSizeFlag(t *testing.T) {
	var n int64
	fs := newFlags("t", &bytes.Buffer{})
	fs.Var(newPositiveSize(&n, 256<<20), "max", "")
	var rate int64
	fs.Var(newByteSize(&rate, 1), "rate", "")
	if n != 256<<20 || fs.Lookup("max").DefValue != "256MiB" {
		t.Fatalf("default: %d, shown as %q", n, fs.Lookup("max").DefValue)
	}
	if err := parseFlags(fs, []string{"--max", "64MiB", "--rate", "0"}); err != nil || n != 64<<20 || rate != 0 {
		t.Fatalf("parse: %v, max %d, rate %d", err, n, rate)
	}
	for v, want := range map[int64]string{1 << 30: "1GiB", 1536: "1.5KiB", 1000: "1000B", 0: "0"} {
		if got := (byteSize{n: &v}).String(); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", v, got, want)
		}
	}
	for _, bad := range []string{"lots", "-1MiB", "0", "64 parsecs", "99999999EiB"} {
		fs := newFlags("t", &bytes.Buffer{})
		fs.Var(newPositiveSize(&n, 1), "max", "")
		err := parseFlags(fs, []string{"--max", bad})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--max") || !strings.Contains(err.Error(), "size") {
			t.Errorf("--max %q: %v, want a usage error naming the flag and a size", bad, err)
		}
	}
}

// TestCLITransportFlag: --transport takes protocol's names only.
func TestCLITransportFlag(t *testing.T) {
	var tr protocol.Transport
	fs := newFlags("t", &bytes.Buffer{})
	fs.Var(newTransportFlag(&tr, protocol.TransportAuto), "transport", "")
	if err := parseFlags(fs, []string{"--transport", "turn"}); err != nil || tr != protocol.TransportTURN {
		t.Fatalf("parse turn: %v, got %q", err, tr)
	}
	fs = newFlags("t", &bytes.Buffer{})
	fs.Var(newTransportFlag(&tr, protocol.TransportAuto), "transport", "")
	err := parseFlags(fs, []string{"--transport", "carrier-pigeon"})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "carrier-pigeon") || !strings.Contains(err.Error(), "auto, p2p, turn, relay") {
		t.Fatalf("bad transport: %v, want a usage error listing the transports", err)
	}
	err = cmdSend(context.Background(), []string{"--transport", "udp", "http://127.0.0.1:1/#x", "f"}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.As(err, &ue) {
		t.Fatalf("send --transport udp: %v, want a usage error before dialing", err)
	}
}

// TestServeValidatesBeforeListening: a bad TURN (or signaling) option is
// refused before the HTTP port is bound. The port is held by the test, so
// a listen attempt would fail with "address already in use" instead.
func TestServeValidatesBeforeListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--public-ip", "::1"}, "--public-ip"},
		{[]string{"--turn-external", "stun:x"}, "--turn-external"},
		{[]string{"--ping-interval", "30s", "--ping-timeout", "10s"}, "PongWait"},
		{[]string{"--max-members", "100000"}, "MaxMembers"},
		{[]string{"--relay-room-bytes", "0"}, "relay-room-bytes"},
		{[]string{"--tls", "sometimes"}, "--tls"},
	} {
		args := append([]string{"--addr", addr, "--metrics-addr", ""}, tc.args...)
		var stdout bytes.Buffer
		err := cmdServe(context.Background(), args, &stdout, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want a usage error about %s", tc.args, err, tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("serve %v printed %q: it started something", tc.args, stdout.String())
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	err = cmdServe(context.Background(), []string{"--addr", addr, "--tls-cert", missing, "--tls-key", missing}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Errorf("serve with a missing certificate file: %v, want the certificate error (not a listen error)", err)
	}
}
