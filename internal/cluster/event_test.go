package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	ev := &Event{Type: TypeItem, Node: "n1", Room: "r", Key: "n1/7", Kind: 2, Sender: "s",
		File: "f", Owed: []string{"a", "b"}, Data: []byte{1, 2, 3}}
	b, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip: got %+v, want %+v", got, ev)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := Encode(&Event{Type: TypeGone, Node: "n"})
	long := bytes.Repeat([]byte("x"), maxFieldLen+1)
	tooLong, _ := Encode(&Event{Type: TypeGone, Node: string(long)})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"magic":      append([]byte{'X'}, good[1:]...),
		"version":    append([]byte{'C', 9}, good[2:]...),
		"short":      good[:len(good)-1],
		"type":       mustEncode(t, &Event{Type: "nope", Node: "n"}),
		"no node":    mustEncode(t, &Event{Type: TypeGone}),
		"long field": tooLong,
		"ack ix":     mustEncode(t, &Event{Type: TypeAck, Node: "n", Keys: []string{"a"}, Indexes: []uint32{1, 2}}),
		"ack rooms":  mustEncode(t, &Event{Type: TypeAck, Node: "n", Keys: []string{"a", "b"}, Rooms: []string{"r"}}),
		"item rooms": mustEncode(t, &Event{Type: TypeItem, Node: "n", Rooms: []string{"r"}}),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func mustEncode(t testing.TB, ev *Event) []byte {
	t.Helper()
	b, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecode(f *testing.F) {
	for _, ev := range []*Event{
		{Type: TypePresence, Node: "n", Room: "r", Event: "join", Member: "m"},
		{Type: TypeAck, Node: "n", Keys: []string{"n/1"}, Indexes: []uint32{1}},
		{Type: TypeAck, Node: "n", Keys: []string{"n/1", "m/2"}, Rooms: []string{"r", "s"}, Members: []string{"a", "b"}},
		{Type: TypeSnapshot, Node: "n", Roster: []Member{{ID: "m", Node: "n"}}},
		{Type: TypeItem, Node: "n", Data: []byte("sealed")},
	} {
		b, _ := Encode(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
	})
}

// fullEvent sets every field (no event has them all; the codec does not care).
func fullEvent() *Event {
	return &Event{Type: TypeAck, Node: "node1-0a1b2c3d", Seq: 1 << 40, Room: "w3oampTq9xbFkQvD9n3rXg", Hash: "ab12", Event: "join",
		Stamp: -5, Member: "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", Pub: "pub", MAC: "mac", To: "to", Key: "node1/9", Kind: 255,
		Sender: "s", Origin: "127.0.0.1", File: "f", Owed: []string{"a", "b"}, Keys: []string{"k1", "k2"}, Members: []string{"m1", "m2"},
		Rooms: []string{"r1", "r2"}, Indexes: []uint32{0, 1<<32 - 1}, Roster: []Member{{ID: "i", Pub: "p", MAC: "m", Node: "n"}, {ID: "j"}},
		Data: []byte("sealed")}
}

func TestEventRoundTripEveryField(t *testing.T) {
	ev := fullEvent()
	got, err := Decode(mustEncode(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ev)
	}
}

// BenchmarkDecode: a chat item as nodes pass them, in the binary header
// beside the JSON header of version 1 (the baseline), as a ratio.
func BenchmarkDecode(b *testing.B) {
	ev := &Event{Type: TypeItem, Node: "node1-0a1b2c3d", Seq: 123456, Room: "w3oampTq9xbFkQvD9n3rXg", Key: "node1-0a1b2c3d/98765",
		Kind: 1, Sender: "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", Origin: "127.0.0.1", Data: bytes.Repeat([]byte{7}, 352)}
	for range 9 {
		ev.Owed = append(ev.Owed, "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6")
	}
	bin := mustEncode(b, ev)
	js, _ := json.Marshal(ev)
	var binNs, jsonNs float64
	b.Run("binary", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(bin); err != nil {
				b.Fatal(err)
			}
		}
		binNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("json-baseline", func(b *testing.B) {
		for b.Loop() {
			var e Event
			if err := json.Unmarshal(js, &e); err != nil {
				b.Fatal(err)
			}
		}
		jsonNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if binNs > 0 && jsonNs > 0 {
		b.Logf("decode: binary %.0f ns, JSON %.0f ns: %.1fx faster", binNs, jsonNs, jsonNs/binNs)
	}
}
