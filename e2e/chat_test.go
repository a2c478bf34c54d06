package e2e

import (
	"fmt"
	"testing"

	"cloakroom/client"
)

// TestChatAcrossMembers: with three members, each chat arrives exactly once
// at each of the two others, from the right member, and never at its author.
func TestChatAcrossMembers(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	peers := []*peer{
		dialPeer(ctx, t, link, "alice", nil),
		dialPeer(ctx, t, link, "bob", nil),
		dialPeer(ctx, t, link, "carol", nil),
	}
	meshOnline(ctx, t, peers...)

	text := func(p *peer) string { return "hello from " + p.name + " " + p.ID() }
	fin := func(p *peer) string { return "fin from " + p.name }
	for _, p := range peers {
		if err := p.SendChat(ctx, text(p)); err != nil {
			t.Fatalf("%s: SendChat: %v", p.name, err)
		}
	}
	// A second message from every member: the relay delivers one member's
	// items in order, so once the "fin"s are in, a duplicate of an earlier
	// message would already have arrived.
	for _, p := range peers {
		if err := p.SendChat(ctx, fin(p)); err != nil {
			t.Fatalf("%s: SendChat: %v", p.name, err)
		}
	}
	for _, p := range peers {
		for _, q := range peers {
			if q != p {
				waitChat(ctx, t, p, fmt.Sprintf("fin from %s", q.name), func(c client.Chat) bool { return c.Text == fin(q) })
			}
		}
	}
	for _, p := range peers {
		got := p.chats.snapshot()
		if len(got) != 4 {
			t.Errorf("%s got %d chats, want 4 (2 from each other member): %+v", p.name, len(got), got)
		}
		for _, q := range peers {
			want := 1
			if q == p {
				want = 0
			}
			for _, txt := range []string{text(q), fin(q)} {
				n := count(got, func(c client.Chat) bool { return c.Text == txt })
				if n != want {
					t.Errorf("%s got %q %d times, want %d", p.name, txt, n, want)
				}
			}
		}
		ids := map[string]bool{}
		for _, c := range got {
			var author *peer
			for _, q := range peers {
				if c.Text == text(q) || c.Text == fin(q) {
					author = q
				}
			}
			switch {
			case author == nil:
				t.Errorf("%s got an unexpected chat %+v", p.name, c)
			case c.From != author.ID():
				t.Errorf("%s got %q From %s, want %s (%s)", p.name, c.Text, c.From, author.ID(), author.name)
			}
			if ids[c.ID] {
				t.Errorf("%s got envelope id %s twice", p.name, c.ID)
			}
			ids[c.ID] = true
		}
		// Per author, the order is kept: the message before its fin.
		for _, q := range peers {
			if q == p {
				continue
			}
			var seq []string
			for _, c := range got {
				if c.From == q.ID() {
					seq = append(seq, c.Text)
				}
			}
			if len(seq) == 2 && (seq[0] != text(q) || seq[1] != fin(q)) {
				t.Errorf("%s got %s's chats out of order: %q", p.name, q.name, seq)
			}
		}
	}
}
