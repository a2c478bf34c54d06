package transfer

import (
	"testing"

	"cloakroom/internal/protocol"
)

// TestSchedule: chunks are skipped only when every recipient holds them,
// Heard closes once every accepted recipient said what it holds, and the
// window follows the slowest online recipient.
func TestSchedule(t *testing.T) {
	s := NewSchedule(10, []string{"a", "b", "c"})
	if err := s.SetHave("a", [][2]uint32{{0, 4}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHave("b", [][2]uint32{{2, 10}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHave("b", [][2]uint32{{3, 11}}); err == nil {
		t.Fatal("a range past the last chunk was accepted")
	}
	select {
	case <-s.Heard():
		t.Fatal("heard before c said anything")
	default:
	}
	s.Narrow([]string{"a", "b"}) // the server did not accept c
	select {
	case <-s.Heard():
	default:
		t.Fatal("not heard once every accepted recipient said what it holds")
	}
	for i, want := range []bool{false, false, true, true, false} {
		if got := s.AllHave(uint32(i)); got != want {
			t.Errorf("AllHave(%d) = %v, want %v", i, got, want)
		}
	}
	if s.Lagging(4, 4) || !s.Lagging(5, 4) {
		t.Fatal("window of 4 chunks not enforced with no acks")
	}
	s.Note(&protocol.Message{Type: protocol.TypeProgress, Member: "a", Acked: 3})
	if !s.Lagging(5, 4) {
		t.Fatal("b, with no acks, should still hold the window")
	}
	s.Note(&protocol.Message{Type: protocol.TypePresence, Member: "b", Event: protocol.EventOffline})
	select {
	case <-s.Moved():
	default:
		t.Fatal("no wake-up after a note")
	}
	if s.Lagging(5, 4) {
		t.Fatal("an offline recipient still holds the window")
	}
}

// TestScheduleFinishedStaysOut: a recipient judged undeliverable (or
// delivered) that then shows online again does not hold the window: the
// server counts no more of its acks. (In a cluster a member whose node
// died shows offline, and later online on another node, after the
// sender's node may have judged it undeliverable.)
func TestScheduleFinishedStaysOut(t *testing.T) {
	s := NewSchedule(10, []string{"a", "b"})
	s.Note(&protocol.Message{Type: protocol.TypeProgress, Member: "a", Acked: 8})
	s.Note(&protocol.Message{Type: protocol.TypePresence, Member: "b", Event: protocol.EventOffline})
	s.Note(&protocol.Message{Type: protocol.TypeUndeliverable, Member: "b"})
	s.Note(&protocol.Message{Type: protocol.TypePresence, Member: "b", Event: protocol.EventOnline})
	if s.Lagging(9, 4) {
		t.Fatal("an undeliverable recipient back online holds the window")
	}
	s.Note(&protocol.Message{Type: protocol.TypeDelivered, Member: "a"})
	s.Note(&protocol.Message{Type: protocol.TypePresence, Member: "a", Event: protocol.EventOnline})
	if s.Lagging(20, 4) {
		t.Fatal("a delivered recipient back online holds the window")
	}
	s2 := NewSchedule(10, []string{"c"})
	s2.Note(&protocol.Message{Type: protocol.TypePresence, Member: "c", Event: protocol.EventOffline})
	s2.Note(&protocol.Message{Type: protocol.TypePresence, Member: "c", Event: protocol.EventOnline})
	if !s2.Lagging(5, 4) {
		t.Fatal("a recipient back online (not finished) no longer holds the window")
	}
}
