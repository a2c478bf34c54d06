package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRenames: an id goes under itself until renamed, then under id~1,
// id~2…; renames older than renameKeep are forgotten.
func TestRenames(t *testing.T) {
	var r renames
	t0 := time.Unix(1000, 0)
	if got := r.current("n-1"); got != "n-1" {
		t.Fatalf("current before a rename: %q", got)
	}
	r.rename("n-1", t0)
	r.rename("n-2", t0)
	r.rename("n-1", t0.Add(time.Second))
	if got := r.current("n-1"); got != "n-1~2" {
		t.Fatalf("after two renames: %q, want n-1~2", got)
	}
	if got := r.current("n-2"); got != "n-2~1" {
		t.Fatalf("after one rename: %q, want n-2~1", got)
	}
	r.rename("n-3", t0.Add(renameKeep+2*time.Second))
	if got := r.current("n-1"); got != "n-1" {
		t.Fatalf("an old rename was kept: %q", got)
	}
	if got := r.current("n-3"); got != "n-3~1" {
		t.Fatalf("n-3: %q", got)
	}
}

// TestInProcess: only nats-server's "duplicate message id is in process"
// counts, also wrapped.
func TestInProcess(t *testing.T) {
	stuck := &jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}
	other := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	if !inProcess(fmt.Errorf("publish: %w", stuck)) {
		t.Error("10158 not recognised")
	}
	if inProcess(other) || inProcess(jetstream.ErrNoStreamResponse) || inProcess(nil) {
		t.Error("another error taken for 10158")
	}
}
