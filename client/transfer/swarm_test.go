package transfer

import (
	"slices"
	"testing"
	"time"
)

// TestSwarmOriginOnlyForWhatNoOneElseHolds: with a peer holding part of
// the file, the peer is asked for that part and the origin only for the
// rest, and only by "any".
func TestSwarmOriginOnlyForWhatNoOneElseHolds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSwarm(100, nil, false)
	s.AddSource("origin", true, now)
	s.AddSource("peer", false, now)
	s.SetHave("peer", [][2]uint32{{0, 90}}, true, false)
	wants := s.Plan(now, true)
	var peer, origin *Want
	for i := range wants {
		switch wants[i].Source {
		case "peer":
			peer = &wants[i]
		case "origin":
			origin = &wants[i]
		}
	}
	if peer == nil || len(peer.Indices) != PeerWindow || slices.ContainsFunc(peer.Indices, func(i uint32) bool { return i >= 90 }) {
		t.Fatalf("peer asked %+v, want %d chunks below 90", peer, PeerWindow)
	}
	if origin == nil || origin.Any != 10 || len(origin.Indices) != 0 {
		t.Fatalf("origin asked %+v, want any 10 (the chunks only it holds)", origin)
	}
	// Nothing is asked twice while outstanding.
	if w := s.Plan(now, true); len(w) != 0 {
		t.Fatalf("second plan %+v, want nothing (windows full)", w)
	}
}

// TestSwarmBadSourceAndStalls: a bad source's outstanding chunks go
// elsewhere and it is never asked again; an origin that leaves "any"
// unanswered is asked by index.
func TestSwarmBadSourceAndStalls(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSwarm(40, nil, false)
	s.AddSource("origin", true, now)
	s.AddSource("bad", false, now)
	s.SetHave("bad", nil, true, true)
	w := s.Plan(now, true)
	if len(w) != 1 || w[0].Source != "bad" || len(w[0].Indices) != PeerWindow {
		t.Fatalf("plan %+v, want %d chunks of bad only", w, PeerWindow)
	}
	s.Bad("bad")
	w = s.Plan(now, true)
	if len(w) != 1 || w[0].Source != "origin" || w[0].Any != 40 {
		t.Fatalf("after bad: %+v, want any 40 of the origin", w)
	}
	if s.Arrived(3, "origin", now) != true || s.Arrived(3, "origin", now) != false {
		t.Fatal("arrival not counted once")
	}
	later := now.Add(AnyStallAfter + time.Second)
	w = s.Plan(later, true)
	if len(w) != 1 || w[0].Any != 0 || len(w[0].Indices) == 0 || slices.Contains(w[0].Indices, 3) || w[0].Indices[0] != 0 {
		t.Fatalf("after the origin stalled: %+v, want the missing chunks by index, lowest first", w)
	}
}

// TestSwarmSequential: sequential mode asks lowest first, of peers too.
func TestSwarmSequential(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSwarm(1000, func(i uint32) bool { return i < 10 }, true)
	s.AddSource("peer", false, now)
	s.SetHave("peer", nil, false, true)
	w := s.Plan(now, true)
	if len(w) != 1 || w[0].Indices[0] != 10 || w[0].Indices[PeerWindow-1] != 10+PeerWindow-1 {
		t.Fatalf("sequential plan %+v, want chunks 10.. in order", w)
	}
	if s.Plan(now, false) != nil {
		t.Fatal("peers asked before the hash pieces are known")
	}
}

// TestSwarmStalledPeer: a peer that delivers nothing for StallAfter (gone
// without its link ending yet) is not asked again and what it holds no
// longer keeps the origin from being asked, until it speaks again.
func TestSwarmStalledPeer(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSwarm(50, nil, false)
	s.AddSource("origin", true, now)
	s.AddSource("gone", false, now)
	s.SetHave("gone", nil, true, true)
	if w := s.Plan(now, true); len(w) != 1 || w[0].Source != "gone" {
		t.Fatalf("plan %+v, want only the peer", w)
	}
	later := now.Add(StallAfter + time.Second)
	w := s.Plan(later, true)
	if len(w) != 1 || w[0].Source != "origin" || w[0].Any != 50 {
		t.Fatalf("after the peer stalled: %+v, want any 50 of the origin", w)
	}
	s.SetHave("gone", [][2]uint32{{0, 50}}, false, false) // it speaks again
	if w := s.Plan(later, true); len(w) != 1 || w[0].Source != "gone" {
		t.Fatalf("after the peer spoke: %+v, want it asked again", w)
	}
}
