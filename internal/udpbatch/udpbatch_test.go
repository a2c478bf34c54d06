package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

func listen(t *testing.T, ip net.IP) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("no %v: %v", ip, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestConnReadsEveryDatagramInOrder: datagrams queued before a read come out
// one by one, in order, with their sender, over several batches; a long
// one is cut to the buffer; the read deadline still holds.
func TestConnReadsEveryDatagramInOrder(t *testing.T) {
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
		t.Run(ip.String(), func(t *testing.T) {
			c := NewConn(listen(t, ip), 64)
			src := listen(t, ip)
			const n = 3*Size + 5
			for i := range n {
				if _, err := src.WriteTo([]byte(fmt.Sprint(i)), c.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := src.WriteTo(make([]byte, 100), c.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 128)
			for i := range n {
				k, from, err := c.ReadFrom(buf)
				if err != nil || string(buf[:k]) != fmt.Sprint(i) || from.String() != src.LocalAddr().String() {
					t.Fatalf("datagram %d: %q from %v, %v", i, buf[:k], from, err)
				}
			}
			if k, _, err := c.ReadFrom(buf); err != nil || k != 64 {
				t.Fatalf("long datagram: %d bytes, %v; want 64", k, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := c.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read past the deadline: %v", err)
			}
			_ = c.Close()
			if _, _, err := c.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read after Close: %v", err)
			}
		})
	}
}

// TestConnDualStack: a socket on every address (IPv6, dual-stack, as the
// TURN server's listener is by default) gets IPv4 senders' datagrams with
// the sender's address as a plain read would give it.
func TestConnDualStack(t *testing.T) {
	plain := listen(t, nil)
	c := NewConn(listen(t, nil), 64)
	src := listen(t, net.IPv4(127, 0, 0, 1))
	port := func(c net.PacketConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
	buf := make([]byte, 64)
	var want net.Addr
	for _, dst := range []net.PacketConn{plain, c} {
		if _, err := src.WriteTo([]byte("v4"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port(dst)}); err != nil {
			t.Fatal(err)
		}
		_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := dst.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "v4" {
			t.Fatalf("got %q, %v", buf[:n], err)
		}
		if want == nil {
			want = from
		} else if from.String() != want.String() || !from.(*net.UDPAddr).IP.Equal(want.(*net.UDPAddr).IP) {
			t.Fatalf("from %v, a plain read says %v", from, want)
		}
	}
}
