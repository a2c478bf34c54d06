package client

import "testing"

// TestHistoryForMember: a member verified later gets the chat remembered up
// to our challenge, not what came after (that reached it live; in the
// history too it would show as "earlier" when the signal wins the race —
// TestCLIChat saw exactly that).
func TestHistoryForMember(t *testing.T) {
	r := testRoom(t)
	for _, s := range []string{"one", "two", "three"} {
		r.remember("a", []byte(s))
	}
	r.mu.Lock()
	r.histMark["b"] = r.histSeq // as challenge does
	r.mu.Unlock()
	r.remember("a", []byte("four"))
	r.remember("c", []byte("five"))
	r.mu.Lock()
	got := r.historyForLocked("b")
	none := r.historyForLocked("never-challenged")
	r.mu.Unlock()
	if len(got) != 3 || got[2].Env != r.history[2].Env {
		t.Fatalf("history for b: %d items (%v), want the first 3", len(got), got)
	}
	if len(none) != 5 {
		t.Fatalf("history without a mark: %d items, want all 5", len(none))
	}
}
