package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

// The room library (docs/PROTOCOL.md "Room library and swarm"): files stay
// available from any member who holds them, late joiners catch up, fetchers
// help each other, and a holder serving wrong bytes is dropped.

func libraryPeer(fetchEarlier bool) func(*client.Options) {
	return func(o *client.Options) {
		o.Transport = protocol.TransportP2P
		o.FetchEarlier = fetchEarlier
	}
}

// TestLibraryLateJoiner: A sends a file to B directly and leaves; C joins
// afterwards and gets it from B (A offline throughout), with A named as
// the origin and B as the one who helped.
func TestLibraryLateJoiner(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	a := dialPeer(ctx, t, link, "a", libraryPeer(false))
	b := dialPeer(ctx, t, link, "b", libraryPeer(false))
	meshVerified(ctx, t, a, b)
	path, sum := makeFile(t, t.TempDir(), "video.mp4", 24<<20+77, "")
	if rep, err := a.SendFile(ctx, path); err != nil {
		t.Fatalf("SendFile: %v (%+v)", err, rep)
	}
	if f := nextFile(ctx, t, b); f.Err != nil || f.SHA256 != sum {
		t.Fatalf("b received %+v", f)
	}
	aID := a.ID()
	_ = a.Leave()
	waitGone(ctx, t, b, aID)

	c := dialPeer(ctx, t, link, "c", libraryPeer(true))
	f := nextFile(ctx, t, c)
	if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("c received %+v, want SHA-256 %s", f, sum)
	}
	if f.From != aID || !slices.Equal(f.Helpers, []string{b.ID()}) {
		t.Fatalf("c's file came from %s with helpers %v; want origin %s, helper %s", f.From, f.Helpers, aID, b.ID())
	}
	lib := c.Library()
	if len(lib) != 1 || lib[0].Origin != aID || !lib[0].Held || lib[0].Name != "video.mp4" {
		t.Fatalf("c's library %+v", lib)
	}
}

// waitGone waits until p no longer lists member as online.
func waitGone(ctx context.Context, t *testing.T, p *peer, member string) {
	t.Helper()
	if _, err := p.presence.wait(ctx, func([]presenceEvent) bool { return !slices.Contains(p.OnlineMembers(), member) }); err != nil {
		t.Fatalf("%s: waiting for %s to go: %v", p.name, member, err)
	}
}

// TestLibraryHistory: after 20 chat lines and 3 files, a newcomer sees the
// lines in order with their sender, and gets the 3 files, while a member
// who holds them is online.
func TestLibraryHistory(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	a := dialPeer(ctx, t, link, "a", libraryPeer(false))
	b := dialPeer(ctx, t, link, "b", libraryPeer(false))
	meshVerified(ctx, t, a, b)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("line %02d %s", i, randomMarker("h")))
		if err := a.SendChat(ctx, lines[i]); err != nil {
			t.Fatal(err)
		}
	}
	sums := map[string]string{}
	for i := range 3 {
		path, sum := makeFile(t, t.TempDir(), fmt.Sprintf("photo%d.jpg", i), 200<<10+i, "")
		sums[sum] = path
		if _, err := a.SendFile(ctx, path); err != nil {
			t.Fatal(err)
		}
		nextFile(ctx, t, b)
	}
	waitChat(ctx, t, b, "20 lines at b", func(c client.Chat) bool { return c.Text == lines[19] })

	c := dialPeer(ctx, t, link, "c", libraryPeer(true))
	got := waitChat(ctx, t, c, "the history", func(m client.Chat) bool { return m.Text == lines[19] })
	var texts []string
	for _, m := range got {
		if m.From != a.ID() || !m.History {
			t.Fatalf("history line %+v: want from a, marked history", m)
		}
		texts = append(texts, m.Text)
	}
	// Both a and b give the history; each line is shown once, in order.
	if !slices.Equal(texts, lines) {
		t.Fatalf("history %q\nwant %q", texts, lines)
	}
	for range 3 {
		f := nextFile(ctx, t, c)
		if f.Err != nil || sums[f.SHA256] == "" || fileSHA256(t, f.Path) != f.SHA256 {
			t.Fatalf("c received %+v", f)
		}
		delete(sums, f.SHA256)
	}
	if c.chats.snapshot()[0].Text != lines[0] {
		t.Fatalf("first chat at c is %q", c.chats.snapshot()[0].Text)
	}
}

// TestLibraryBadHolder: a holder whose copy was altered on disk serves
// validly sealed chunks with the wrong content: the fetcher detects it at
// the first such chunk, drops it, and completes from the honest holder.
func TestLibraryBadHolder(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	a := dialPeer(ctx, t, link, "a", libraryPeer(false))
	bad := dialPeer(ctx, t, link, "bad", libraryPeer(false))
	good := dialPeer(ctx, t, link, "good", libraryPeer(false))
	meshVerified(ctx, t, a, bad, good)
	path, sum := makeFile(t, t.TempDir(), "big.bin", 24<<20+5, "")
	if _, err := a.SendFile(ctx, path); err != nil {
		t.Fatal(err)
	}
	fb, fg := nextFile(ctx, t, bad), nextFile(ctx, t, good)
	if fb.Err != nil || fg.Err != nil {
		t.Fatalf("receptions %v %v", fb.Err, fg.Err)
	}
	// Flip one byte in every chunk of bad's copy, in place.
	fh, err := os.OpenFile(fb.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(100); off < fb.Size; off += protocol.ChunkSize {
		b := []byte{0}
		_, _ = fh.ReadAt(b, off)
		b[0] ^= 0xff
		if _, err := fh.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	fh.Close()
	_ = a.Leave()
	waitGone(ctx, t, good, a.ID())

	// C learns who holds the file, then fetches it from both at once: a
	// fetch waits (a few seconds at most) for links to every holder it
	// knows before its first wants, which go to both.
	c := dialPeer(ctx, t, link, "c", func(o *client.Options) {
		libraryPeer(false)(o)
		if os.Getenv("DEBUGLOG") != "" {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	c.Settle(ctx, 1500*time.Millisecond, 20*time.Second)
	lib := c.Library()
	if len(lib) != 1 || len(lib[0].Holders) != 2 {
		t.Fatalf("c's library %+v: want one entry held by bad and good", lib)
	}
	if err := c.Fetch(lib[0].ID); err != nil {
		t.Fatal(err)
	}
	f := nextFile(ctx, t, c)
	if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("c received %+v, want SHA-256 %s", f, sum)
	}
	if !slices.Equal(f.Dropped, []string{bad.ID()}) || !slices.Equal(f.Helpers, []string{good.ID()}) {
		t.Fatalf("dropped %v, helpers %v; want dropped [bad %s], helpers [good %s]", f.Dropped, f.Helpers, bad.ID(), good.ID())
	}
}

// TestLibrarySwarmFetchersHelpEachOther: one origin, three receivers at
// once: every copy is intact and the receivers served each other chunks
// (the origin chose for each a different part first).
func TestLibrarySwarmFetchersHelpEachOther(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	a := dialPeer(ctx, t, link, "a", libraryPeer(false))
	rs := []*peer{dialPeer(ctx, t, link, "r1", libraryPeer(false)), dialPeer(ctx, t, link, "r2", libraryPeer(false)), dialPeer(ctx, t, link, "r3", libraryPeer(false))}
	meshVerified(ctx, t, append([]*peer{a}, rs...)...)
	path, sum := makeFile(t, t.TempDir(), "movie.mkv", 32<<20+3, "")
	rep, err := a.SendFile(ctx, path)
	if err != nil || len(rep.Delivered) != 3 {
		t.Fatalf("SendFile: %v (%+v)", err, rep)
	}
	helped := 0
	for _, r := range rs {
		f := nextFile(ctx, t, r)
		if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
			t.Fatalf("%s received %+v", r.name, f)
		}
		helped += len(f.Helpers)
	}
	if helped == 0 {
		t.Fatalf("no receiver got a chunk from another: no swarm")
	}
}

// TestLibraryResendSameContent: the same bytes sent again under another
// name is a new entry and a second file, not swallowed.
func TestLibraryResendSameContent(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	a := dialPeer(ctx, t, link, "a", libraryPeer(false))
	b := dialPeer(ctx, t, link, "b", libraryPeer(false))
	meshVerified(ctx, t, a, b)
	dir := t.TempDir()
	p1, sum := makeFile(t, dir, "one.bin", 3<<20, "")
	data, _ := os.ReadFile(p1)
	p2 := dir + "/two.bin"
	if err := os.WriteFile(p2, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{p1, p2} {
		if rep, err := a.SendFile(ctx, p); err != nil {
			t.Fatalf("%v (%+v)", err, rep)
		}
		if f := nextFile(ctx, t, b); f.Err != nil || f.SHA256 != sum {
			t.Fatalf("b received %+v", f)
		}
	}
	if got := visibleFiles(t, b.dir); !slices.Equal(got, []string{"one.bin", "two.bin"}) {
		t.Fatalf("b holds %v", got)
	}
	if n := len(b.Library()); n != 2 {
		t.Fatalf("b's library has %d entries, want 2", n)
	}
}

// waitHolders waits until p's library lists the file named name as held by
// exactly holders (the members online who greeted p with it).
func waitHolders(ctx context.Context, t *testing.T, p *peer, name string, holders ...string) {
	t.Helper()
	slices.Sort(holders)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, e := range p.Library() {
			if e.Name == name && slices.Equal(e.Holders, holders) {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: waiting for %s held by %v: library %+v", p.name, name, holders, p.Library())
		}
	}
}
