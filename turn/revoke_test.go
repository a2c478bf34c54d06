package turn

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestRevoke: a member who left has its credentials revoked: what its
// existing allocation sends is no longer relayed, its credentials get 401,
// and other users are untouched.
func TestRevoke(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{AllowLoopback: true})
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			user := "gone-" + transport
			ca, ra := allocate(t, s, transport, user)
			cb, rb := allocate(t, s, "udp", "stays-"+transport)
			if err := ca.CreatePermission(rb.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if err := cb.CreatePermission(ra.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			exchange(t, ra, rb, []byte("before"))

			s.Revoke(user, time.Now().Add(time.Hour))
			if _, err := ra.WriteTo([]byte("after"), rb.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			_ = rb.SetReadDeadline(time.Now().Add(time.Second))
			var ne net.Error
			if n, _, err := rb.ReadFrom(buf); !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("relayed for a revoked user: %q, %v", buf[:n], err)
			}
			u, p := s.Credentials(user, time.Hour)
			if _, err := dialTURN(t, s, "udp", u, p).Allocate(); errorCode(err) != 401 {
				t.Fatalf("allocate with revoked credentials: %v, want 401", err)
			}
			// Others still relay.
			cc, rc := allocate(t, s, "udp", "other-"+transport)
			if err := cb.CreatePermission(rc.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if err := cc.CreatePermission(rb.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			exchange(t, rb, rc, []byte("still fine"))
		})
	}
}
