package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/protocol"
)

// connectProxy is a CONNECT proxy on 127.0.0.1 that answers every request
// with answer (200: a tunnel) and records the last Proxy-Authorization.
func connectProxy(t *testing.T, answer int) (addr string, auth <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	authc := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				authc <- req.Header.Get("Proxy-Authorization")
				if answer != http.StatusOK {
					fmt.Fprintf(c, "HTTP/1.1 %d %s\r\n\r\n", answer, http.StatusText(answer))
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), authc
}

// echoServer echoes one line per connection.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func fixedProxy(raw string) ProxyFunc {
	return func(*url.URL) (*url.URL, error) { return url.Parse(raw) }
}

func TestProxyDialerTunnels(t *testing.T) {
	target := echoServer(t)
	paddr, auth := connectProxy(t, http.StatusOK)
	d := newProxyDialer(fixedProxy("http://alice:s3cret@"+paddr), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.dialContext(ctx, "https", "tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := <-auth, "Basic YWxpY2U6czNjcmV0"; got != want {
		t.Errorf("Proxy-Authorization %q, want %q", got, want)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("through the tunnel: %q, %v", line, err)
	}
}

func TestProxyDialerErrors(t *testing.T) {
	target := echoServer(t)
	refusing, _ := connectProxy(t, http.StatusProxyAuthRequired)
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cases := []struct {
		name, proxy string
	}{
		{"refused", "http://" + refusing},
		{"silent", "http://" + silent.Addr().String()},
		{"scheme", "socks5://" + refusing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := newProxyDialer(fixedProxy(tc.proxy), nil).dialContext(ctx, "http", "tcp", target)
			if !errors.Is(err, ErrProxy) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want ErrProxy or the context's end", err)
			}
			if tc.name == "refused" && !strings.Contains(err.Error(), "407") {
				t.Errorf("err %v, want the proxy's answer (407) in it", err)
			}
		})
	}
}

func TestProxyDialerDirect(t *testing.T) {
	target := echoServer(t)
	none := func(*url.URL) (*url.URL, error) { return nil, nil }
	c, err := newProxyDialer(none, nil).dialContext(context.Background(), "http", "tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestProxyDisplayHidesCredentials(t *testing.T) {
	u, _ := url.Parse("http://alice:s3cret@proxy.example:3128")
	if got := ProxyDisplay(u); got != "http://proxy.example:3128 (with credentials)" {
		t.Errorf("ProxyDisplay = %q", got)
	}
}

func TestTurnsHost(t *testing.T) {
	ice := []protocol.ICEServer{{URLs: []string{
		"turn:10.0.0.1:3478?transport=udp", "turn:10.0.0.1:3478?transport=tcp",
		"turns:turn.example:443?transport=tcp", "turns:10.0.0.1?transport=tcp",
	}}}
	for addr, want := range map[string]string{
		"turn.example:443": "turn.example",
		"10.0.0.1:5349":    "10.0.0.1", // the default port of turns:
		"10.0.0.1:3478":    "",
	} {
		got, ok := turnsHost(ice, addr)
		if got != want || ok != (want != "") {
			t.Errorf("turnsHost(%s) = %q, %v; want %q", addr, got, ok, want)
		}
	}
}
