package e2e

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"cloakroom/client"
)

// TestBackpressureSmallRelay: a 24 MiB file goes to two receivers through a
// relay capped at 2 MiB. Both get it intact, the store never holds more than
// its cap, and it ends empty.
func TestBackpressureSmallRelay(t *testing.T) {
	ctx := testCtx(t)
	const relayCap = 2 << 20
	ts := newServer(t, serverOpts{MaxBytes: relayCap, MaxRoomBytes: relayCap})
	link := newSecret(t).Link(ts.URL)

	var maxBytes atomic.Int64
	var samples atomic.Int64
	sample := func(o *client.Options) {
		record := o.OnProgress
		o.OnProgress = func(p client.Progress) {
			record(p)
			b := ts.Store.Stats().Bytes
			samples.Add(1)
			for {
				m := maxBytes.Load()
				if b <= m || maxBytes.CompareAndSwap(m, b) {
					break
				}
			}
		}
	}
	sender := dialPeer(ctx, t, link, "sender", sample)
	r1 := dialPeer(ctx, t, link, "r1", sample)
	r2 := dialPeer(ctx, t, link, "r2", sample)
	meshOnline(ctx, t, sender, r1, r2)

	const size = 24 << 20
	path, sum := makeFile(t, t.TempDir(), "big.bin", size, "")
	rep, err := sender.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v (report %+v)", err, rep)
	}
	want := []string{r1.ID(), r2.ID()}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(rep.Delivered))
	if !slices.Equal(got, want) || len(rep.Failed) != 0 {
		t.Errorf("report delivered %v failed %v, want delivered to both %v", rep.Delivered, rep.Failed, want)
	}
	for _, r := range []*peer{r1, r2} {
		f := nextFile(ctx, t, r)
		if f.Err != nil || f.SHA256 != sum || f.Size != size {
			t.Fatalf("%s received %+v, want big.bin with SHA-256 %s", r.name, f, sum)
		}
		if s := fileSHA256(t, f.Path); s != sum {
			t.Fatalf("%s: file on disk has SHA-256 %s, want %s", r.name, s, sum)
		}
	}
	if samples.Load() == 0 || maxBytes.Load() == 0 {
		t.Fatalf("positive control: %d samples, max %d bytes: the store was never seen holding data", samples.Load(), maxBytes.Load())
	}
	if m := maxBytes.Load(); m > relayCap {
		t.Errorf("store held %d bytes at its peak, over its %d-byte cap", m, relayCap)
	}
	t.Logf("store peak %d bytes over %d samples (cap %d)", maxBytes.Load(), samples.Load(), relayCap)
	if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
		t.Errorf("store after delivery: %+v, want empty", st)
	}
}

// TestOfflineRecipientEvictedUnderPressure: with a small relay, a recipient
// that vanishes mid-file would hold the relay full of chunks owed only to
// it. The server evicts those (they are owed to offline members only), the
// upload goes on, the online recipient gets the file intact, and the sender
// learns from the server (undeliverable, not its own offline grace) that the
// vanished recipient will not get it.
func TestOfflineRecipientEvictedUnderPressure(t *testing.T) {
	ctx := testCtx(t)
	const relayCap = 2 << 20
	ts := newServer(t, serverOpts{MaxBytes: relayCap, MaxRoomBytes: relayCap})
	link := newSecret(t).Link(ts.URL)
	var maxBytes atomic.Int64
	sample := func(o *client.Options) {
		record := o.OnProgress
		o.OnProgress = func(p client.Progress) {
			record(p)
			b := ts.Store.Stats().Bytes
			for m := maxBytes.Load(); b > m && !maxBytes.CompareAndSwap(m, b); m = maxBytes.Load() {
			}
		}
	}
	// The sender's grace outlasts the test: only the server's word can fail r2.
	sender := dialPeer(ctx, t, link, "sender", func(o *client.Options) {
		o.OfflineGrace = 2 * testTimeout
		sample(o)
	})
	r1 := dialPeer(ctx, t, link, "r1", sample)
	r2, r2Closed := dialVanishing(ctx, t, link, "r2")
	meshOnline(ctx, t, sender, r1, r2)

	const size = 8 << 20
	path, sum := makeFile(t, t.TempDir(), "evict.bin", size, "")
	rep, err := sender.SendFile(ctx, path)
	if !errors.Is(err, client.ErrFileLost) {
		t.Fatalf("SendFile error %v, want one wrapping client.ErrFileLost (report %+v)", err, rep)
	}
	if !slices.Equal(rep.Delivered, []string{r1.ID()}) {
		t.Errorf("report Delivered %v, want only r1", rep.Delivered)
	}
	if why, ok := rep.Failed[r2.ID()]; !ok || len(rep.Failed) != 1 {
		t.Errorf("report Failed %v, want only r2", rep.Failed)
	} else {
		t.Logf("r2 failed: %s", why)
	}
	f := nextFile(ctx, t, r1)
	if f.Err != nil || f.SHA256 != sum || f.Size != size {
		t.Fatalf("r1 received %+v, want evict.bin with SHA-256 %s", f, sum)
	}
	<-r2Closed
	if m := maxBytes.Load(); m > relayCap {
		t.Errorf("store held %d bytes at its peak, over its %d-byte cap", m, relayCap)
	}
	if st := ts.Store.Stats(); st.Bytes > relayCap {
		t.Errorf("store after the transfer: %+v, over its cap", st)
	}
}
