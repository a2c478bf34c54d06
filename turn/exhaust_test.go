package turn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	pionturn "github.com/pion/turn/v4"
)

// TestConnectionFloodFromOneAddress: one address opens 1000 TCP connections
// without credentials and keeps sending Binding requests on them (which
// used to push the idle deadline to an hour). The connections over the
// per-address cap are refused at once, the rest are closed at the pre-auth
// deadline, and a member on another address allocates over TCP and relays
// meanwhile — and keeps its connection past the pre-auth deadline.
func TestConnectionFloodFromOneAddress(t *testing.T) {
	t.Parallel()
	const preAuth = 2 * time.Second
	s, _ := startServer(t, Config{AllowLoopback: true, PreAuthTimeout: preAuth})
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	start := time.Now()
	conns := make([]net.Conn, 0, 1000)
	for range 1000 {
		c, err := attacker.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatalf("dial from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	for _, c := range conns {
		_, _ = c.Write(binding) // refused connections may already be closed
	}

	// A member elsewhere (127.0.0.1) still gets TCP TURN and relays.
	memberDialed := time.Now()
	ca, ra := allocate(t, s, "tcp", "member")
	cb, rb := allocate(t, s, "udp", "peer")
	if err := ca.CreatePermission(rb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := cb.CreatePermission(ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	exchange(t, ra, rb, []byte("during the flood"))

	// Every attacker connection ends, the refused ones at once and the
	// others at the pre-auth deadline, Binding answers notwithstanding.
	var wg sync.WaitGroup
	ends := make([]time.Duration, len(conns))
	for i, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(start.Add(preAuth + 10*time.Second))
			_, err := io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				ends[i] = -1
				return
			}
			ends[i] = time.Since(start)
		})
	}
	wg.Wait()
	early, late := 0, 0
	for i, d := range ends {
		switch {
		case d < 0:
			t.Fatalf("attacker connection %d still open %v after it was accepted", i, preAuth+10*time.Second)
		case d < preAuth:
			early++
		default:
			late++
		}
	}
	if late == 0 || late > DefaultMaxConnsPerAddr || early < len(conns)-DefaultMaxConnsPerAddr {
		t.Fatalf("%d connections closed before the pre-auth deadline, %d at it; want at most %d kept until the deadline",
			early, late, DefaultMaxConnsPerAddr)
	}
	t.Logf("%d refused at the per-address cap, %d closed at the pre-auth deadline", early, late)

	// The member's connection outlives its own pre-auth deadline.
	time.Sleep(time.Until(memberDialed.Add(preAuth + time.Second)))
	exchange(t, ra, rb, []byte("after the deadline"))
	exchange(t, rb, ra, []byte("and back"))
}

// TestAllocationsPerAddress: one address holding allocations under many
// user ids (an outsider joining made-up rooms) reaches its share and gets
// 486; a member on another address still allocates.
func TestAllocationsPerAddress(t *testing.T) {
	t.Parallel()
	const share = 5
	s, _ := startServer(t, Config{AllowLoopback: true, MaxAllocationsPerAddr: share})
	for i := range share + 1 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 4)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		u, p := s.Credentials(fmt.Sprintf("made-up-room-%d", i), time.Hour)
		cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: s.Addr().String(),
			Username: u, Password: p, Conn: c, LoggerFactory: quietPion})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Listen(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		relay, err := cl.Allocate()
		switch {
		case i < share && err != nil:
			t.Fatalf("allocation %d from one address: %v", i, err)
		case i < share:
			t.Cleanup(func() { _ = relay.Close() })
		case errorCode(err) != 486:
			t.Fatalf("allocation %d from one address: %v, want 486", i, err)
		}
	}
	allocate(t, s, "udp", "real-member") // from 127.0.0.1
}
