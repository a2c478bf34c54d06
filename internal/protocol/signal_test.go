package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseTransport(t *testing.T) {
	for _, tr := range Transports {
		got, err := ParseTransport(string(tr))
		if err != nil || got != tr {
			t.Errorf("ParseTransport(%q) = %q, %v", tr, got, err)
		}
	}
	if got, err := ParseTransport(""); err != nil || got != TransportAuto {
		t.Errorf(`ParseTransport("") = %q, %v; want auto`, got, err)
	}
	if _, err := ParseTransport("tcp"); err == nil {
		t.Error("ParseTransport(tcp) accepted")
	}
}

func TestLadder(t *testing.T) {
	cases := map[Transport][]Mode{
		TransportAuto:  {ModeDirect, ModeTURN},
		TransportP2P:   {ModeDirect},
		TransportTURN:  {ModeTURN},
		TransportRelay: nil,
	}
	for tr, want := range cases {
		if got := tr.Ladder(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s.Ladder() = %v, want %v", tr, got, want)
		}
	}
	if TransportP2P.UsesRelay() || TransportTURN.UsesRelay() || !TransportAuto.UsesRelay() || !TransportRelay.UsesRelay() {
		t.Error("UsesRelay wrong")
	}
}

func TestTURNPath(t *testing.T) {
	for proto, want := range map[string]Path{"udp": PathTURNUDP, "": PathTURNUDP, "TCP": PathTURNTCP, "tls": PathTURNTLS} {
		if got := TURNPath(proto); got != want {
			t.Errorf("TURNPath(%q) = %s, want %s", proto, got, want)
		}
	}
}

func TestDecodeSignal(t *testing.T) {
	good := map[string]SignalKind{
		`{"kind":"offer","session":"s","mode":"turn","sdp":"v=0"}`:        SignalOffer,
		`{"kind":"answer","session":"s","sdp":"v=0"}`:                     SignalAnswer,
		`{"kind":"candidate","session":"s","candidate":{"candidate":""}}`: SignalCandidate,
		`{"kind":"have","session":"f","file":"f","have":[[0,1]]}`:         SignalHave,
		`{"kind":"have","session":"f","file":"f","done":true}`:            SignalHave,
		`{"kind":"bye","session":"s"}`:                                    SignalBye,
		`{"kind":"something-new","session":"s"}`:                          "something-new",
		`{"kind":"decline","session":"s","reason":"receiver uses relay"}`: SignalDecline,
		`{"kind":"name","session":"n","name":"Alice"}`:                    SignalName,
		`{"kind":"xfer","session":"f","file":"f","op":"cancel"}`:          SignalXfer,
		`{"kind":"xfer","session":"f","file":"f","op":"some-new-op"}`:     SignalXfer,
	}
	for in, kind := range good {
		s, err := DecodeSignal([]byte(in))
		if err != nil || s.Kind != kind {
			t.Errorf("DecodeSignal(%s) = %+v, %v", in, s, err)
		}
	}
	bad := []string{
		`not json`,
		`{"kind":"offer","session":"","mode":"direct","sdp":"v=0"}`,
		`{"kind":"offer","session":"s","sdp":"v=0"}`,
		`{"kind":"offer","session":"s","mode":"relay","sdp":"v=0"}`,
		`{"kind":"offer","session":"s","mode":"direct"}`,
		`{"kind":"answer","session":"s"}`,
		`{"kind":"candidate","session":"s"}`,
		`{"kind":"have","session":"f"}`,
		`{"kind":"have","session":"f","file":"f","have":[[3,3]]}`,
		`{"kind":"have","session":"f","file":"f","have":[[0,16777217]]}`,
		`{"kind":"bye","session":"` + string(make([]byte, 65)) + `"}`,
		`{"kind":"name","session":"n"}`,
		`{"kind":"name","session":"n","name":"` + strings.Repeat("a", MaxNameBytes+1) + `"}`,
		`{"kind":"xfer","session":"f","op":"cancel"}`,
		`{"kind":"xfer","session":"f","file":"f"}`,
		`{"kind":"xfer","session":"f","file":"f","op":"` + strings.Repeat("x", 33) + `"}`,
	}
	for _, in := range bad {
		if s, err := DecodeSignal([]byte(in)); !errors.Is(err, ErrSignal) {
			t.Errorf("DecodeSignal(%q) = %+v, %v; want ErrSignal", in, s, err)
		}
	}
}
