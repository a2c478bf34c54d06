package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOriginQuota: one address filling rooms it made, with members that
// never ack, reaches its quota and waits; another address's uploads still
// fit, and acks of the first address's items let it go on.
func TestOriginQuota(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 400, MaxOriginBytes: 100, MaxSenderBytes: 400})
	flood := func(room string, n int) Item {
		it := chunk(room, n)
		it.Origin = "192.0.2.66"
		return it
	}
	first := h.mustPut(t, flood("made1", 60), "silent1")
	h.mustPut(t, flood("made2", 40), "silent2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Put(ctx, flood("made3", 1), []string{"silent3"}); !errors.Is(err, ErrFull) {
		t.Fatalf("put over the origin quota: %v, want ErrFull", err)
	}
	// Another address, another room: fits at once.
	other := chunk("real", 90)
	other.Origin = "192.0.2.7"
	h.mustPut(t, other, "friend")
	// The flood waits, and goes on once one of its own items is acked.
	res := h.startPut(t, context.Background(), flood("made1", 30), "silent1")
	if _, err := h.Ack("made1", "silent1", first); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil {
		t.Fatalf("put after an ack freed the origin's quota: %v", r.err)
	}
}

// TestSenderQuota: one member's uploads hold at most MaxSenderBytes; other
// members of the same room still upload.
func TestSenderQuota(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 400, MaxSenderBytes: 50})
	it := chunk("r", 50)
	it.Sender = "uploader"
	h.mustPut(t, it, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	it2 := chunk("r", 1)
	it2.Sender = "uploader"
	if _, err := h.Put(ctx, it2, []string{"b"}); !errors.Is(err, ErrFull) {
		t.Fatalf("put over the sender quota: %v, want ErrFull", err)
	}
	h.mustPut(t, chunk("r", 50), "b") // another sender
}

func TestQuotaDefaults(t *testing.T) {
	c := Config{}
	if err := c.Fill(); err != nil {
		t.Fatal(err)
	}
	if c.MaxOriginBytes != DefaultMaxBytes/4 || c.MaxSenderBytes != 32<<20 {
		t.Fatalf("defaults: origin %d sender %d", c.MaxOriginBytes, c.MaxSenderBytes)
	}
	c = Config{MaxBytes: 100, MaxRoomBytes: 10}
	if err := c.Fill(); err != nil || c.MaxSenderBytes != 10 || c.MaxOriginBytes != 25 {
		t.Fatalf("small store: origin %d sender %d (%v)", c.MaxOriginBytes, c.MaxSenderBytes, err)
	}
}
