package cluster

import (
	"bytes"
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

func mustEncode(t *testing.T, ev *Event) []byte {
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
