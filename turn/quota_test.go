package turn

import (
	"net"
	"testing"
	"time"
)

func TestQuotaReservations(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := newQuota(1, 10, 2)
	if !q.reserve("alice", "10.0.0.1", t0) {
		t.Fatal("first reservation refused")
	}
	if q.reserve("alice", "10.0.0.1", t0) {
		t.Fatal("second reservation of alice while the first is pending")
	}
	// The first allocation failed (no event): its slot returns after reserveTTL.
	if !q.reserve("alice", "10.0.0.1", t0.Add(reserveTTL+time.Second)) {
		t.Fatal("expired reservation still counted")
	}
	q.created("alice", "10.0.0.1")
	if !q.reserve("bob", "10.0.0.1", t0) {
		t.Fatal("bob refused")
	}
	q.created("bob", "10.0.0.1")
	if q.reserve("carol", "10.0.0.1", t0) {
		t.Fatal("total cap not applied")
	}
	q.deleted("alice", "10.0.0.1")
	if got := q.allocations(); got != 1 {
		t.Fatalf("allocations = %d, want 1", got)
	}
	if !q.reserve("carol", "10.0.0.1", t0) {
		t.Fatal("carol refused after alice's allocation closed")
	}
	// A reservation left by a failed allocation does not hold the total
	// cap forever: it is swept when the cap is reached.
	if q.reserve("dave", "10.0.0.1", t0) {
		t.Fatal("over the total cap")
	}
	if !q.reserve("dave", "10.0.0.1", t0.Add(reserveTTL+time.Second)) {
		t.Fatal("carol's stale reservation not swept")
	}
	q.deleted("nobody", "10.0.0.1") // unknown users are ignored
}

// TestQuotaPerAddress: one address cannot take more than its share with
// many user ids; another address still can allocate, and a freed slot
// returns to the address.
func TestQuotaPerAddress(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := newQuota(5, 2, 100)
	for _, u := range []string{"a", "b"} {
		if !q.reserve(u, "192.0.2.1", t0) {
			t.Fatalf("%s refused below the address cap", u)
		}
		q.created(u, "192.0.2.1")
	}
	if q.reserve("c", "192.0.2.1", t0) {
		t.Fatal("a third user id from the same address passed the address cap")
	}
	if !q.reserve("c", "192.0.2.2", t0) {
		t.Fatal("another address refused")
	}
	q.deleted("a", "192.0.2.1")
	if !q.reserve("d", "192.0.2.1", t0) {
		t.Fatal("slot not returned to the address after a deletion")
	}
}

func TestAddrKey(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 2}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 3}, "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 4}, "2001:db8:1:2::/64"},
	} {
		if got := addrKey(tt.addr); got != tt.want {
			t.Errorf("addrKey(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
