package turn

import (
	"testing"
	"time"
)

func TestQuotaReservations(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := newQuota(1, 2)
	if !q.reserve("alice", t0) {
		t.Fatal("first reservation refused")
	}
	if q.reserve("alice", t0) {
		t.Fatal("second reservation of alice while the first is pending")
	}
	// The first allocation failed (no event): its slot returns after reserveTTL.
	if !q.reserve("alice", t0.Add(reserveTTL+time.Second)) {
		t.Fatal("expired reservation still counted")
	}
	q.created("alice")
	if !q.reserve("bob", t0) {
		t.Fatal("bob refused")
	}
	q.created("bob")
	if q.reserve("carol", t0) {
		t.Fatal("total cap not applied")
	}
	q.deleted("alice")
	if got := q.allocations(); got != 1 {
		t.Fatalf("allocations = %d, want 1", got)
	}
	if !q.reserve("carol", t0) {
		t.Fatal("carol refused after alice's allocation closed")
	}
	// A reservation left by a failed allocation does not hold the total
	// cap forever: it is swept when the cap is reached.
	if q.reserve("dave", t0) {
		t.Fatal("over the total cap")
	}
	if !q.reserve("dave", t0.Add(reserveTTL+time.Second)) {
		t.Fatal("carol's stale reservation not swept")
	}
	q.deleted("nobody") // unknown users are ignored
}
