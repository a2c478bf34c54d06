package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	idA = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
	idB = "1c8d2e3f-4051-4b6c-9d7e-8f90a1b2c3d4"
)

func b64(n int) string { return EncodeB64(bytes.Repeat([]byte{7}, n)) }

func validJoin() *Message {
	return &Message{Type: TypeJoin, V: Version, Room: b64(RoomIDLen), Verifier: b64(VerifierLen), Member: idA, Pub: b64(PubLen), MAC: b64(MACLen)}
}

func TestRoundTrip(t *testing.T) {
	msgs := []*Message{
		validJoin(),
		{Type: TypeWelcome, V: Version, Member: idA, Members: []MemberInfo{{Member: idB, Pub: b64(PubLen), MAC: b64(MACLen), Online: true}}, TTL: 600},
		{Type: TypePresence, Event: EventJoin, Member: idB, Pub: b64(PubLen), MAC: b64(MACLen), Online: true},
		{Type: TypeMsg, Data: b64(100)},
		{Type: TypeMsg, ID: 9, From: idB, Data: b64(100), File: idA, Chunks: 3},
		{Type: TypeFile, File: idA, Chunks: 3, Data: b64(300)},
		{Type: TypeFileOK, File: idA, Recipients: []string{idB}},
		{Type: TypeAck, IDs: []uint64{1, 2, 3}},
		{Type: TypeSignal, To: idB, Data: b64(40)},
		{Type: TypeProgress, File: idA, Member: idB, Acked: 64},
		{Type: TypeDelivered, File: idA, Member: idB},
		{Type: TypeUndeliverable, File: idA, Member: idB, Error: "gone"},
		{Type: TypeLeave},
		{Type: TypeTURN},
		{Type: TypeTURN, ICE: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1700000000:" + idA, Credential: "c2VjcmV0"}}, Expires: 1700000000},
		{Type: TypeFile, File: idA, Chunks: 3, Data: b64(300), Recipients: []string{idB}},
		Error(CodeRelayFull, "relay full"),
	}
	for _, m := range msgs {
		t.Run(m.Type, func(t *testing.T) {
			b, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			again, _ := Encode(got)
			if !bytes.Equal(b, again) {
				t.Fatalf("round trip changed message:\n%s\n%s", b, again)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	join := func(f func(m *Message)) string {
		m := validJoin()
		f(m)
		b, _ := jsonMarshal(m)
		return string(b)
	}
	cases := map[string]string{
		"not json":          `{"t":`,
		"unknown type":      `{"t":"hello"}`,
		"unknown field":     `{"t":"leave","x":1}`,
		"trailing data":     `{"t":"leave"}{"t":"leave"}`,
		"field not allowed": `{"t":"leave","room":"AAAA"}`,
		"missing field":     `{"t":"file","file":"` + idA + `","chunks":1}`,
		"wrong version":     join(func(m *Message) { m.V = Version + 1 }),
		"short room":        join(func(m *Message) { m.Room = b64(15) }),
		"long verifier":     join(func(m *Message) { m.Verifier = b64(33) }),
		"upper-case id":     join(func(m *Message) { m.Member = strings.ToUpper(idA) }),
		"bad base64":        join(func(m *Message) { m.Pub = "!!" + m.Pub[2:] }),
		"padded base64":     join(func(m *Message) { m.MAC = m.MAC + "=" }),
		"empty ack":         `{"t":"ack","ids":[]}`,
		"too many chunks":   `{"t":"file","file":"` + idA + `","chunks":16777217,"data":"AAAA"}`,
		"file w/o chunks":   `{"t":"msg","data":"AAAA","file":"` + idA + `"}`,
		"bad event":         `{"t":"presence","event":"dance","member":"` + idA + `"}`,
		"oversize signal":   `{"t":"signal","to":"` + idA + `","data":"` + b64(MaxSignalBytes+1) + `"}`,
		"oversize":          `{"t":"msg","data":"` + strings.Repeat("A", MaxControlBytes) + `"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode(%.80s) = %v, want ErrInvalid", in, err)
			}
		})
	}
}

func TestChunkFrames(t *testing.T) {
	c := Chunk{File: [16]byte{1, 2, 3}, Index: 4, Count: 5, Final: true, Sealed: bytes.Repeat([]byte{9}, MaxSealedChunk)}
	up := c.AppendUp(nil)
	got, err := ParseChunkUp(up)
	if err != nil {
		t.Fatalf("ParseChunkUp: %v", err)
	}
	if got.File != c.File || got.Index != 4 || got.Count != 5 || !got.Final || !bytes.Equal(got.Sealed, c.Sealed) {
		t.Fatalf("ChunkUp round trip: got %+v", got)
	}
	d := ChunkDown{Item: 77, Sender: [16]byte{8}, Chunk: c}
	down := append(d.DownHeader(), c.Sealed...)
	if len(down) > MaxFrameBytes {
		t.Fatalf("largest ChunkDown is %d bytes, over %d", len(down), MaxFrameBytes)
	}
	gd, err := ParseChunkDown(down)
	if err != nil {
		t.Fatalf("ParseChunkDown: %v", err)
	}
	if gd.Item != 77 || gd.Sender != d.Sender || gd.Index != 4 || !bytes.Equal(gd.Sealed, c.Sealed) {
		t.Fatalf("ChunkDown round trip: got %+v", gd)
	}
}

func TestChunkFrameRejects(t *testing.T) {
	good := Chunk{Index: 0, Count: 2, Sealed: make([]byte, 32)}
	mod := func(f func(b []byte) []byte) []byte { return f(good.AppendUp(nil)) }
	cases := map[string][]byte{
		"empty":           nil,
		"version":         mod(func(b []byte) []byte { b[0] = 2; return b }),
		"kind":            mod(func(b []byte) []byte { b[1] = FrameChunkDown; return b }),
		"short header":    mod(func(b []byte) []byte { return b[:ChunkUpHeader-1] }),
		"no tag":          mod(func(b []byte) []byte { return b[:ChunkUpHeader+15] }),
		"index >= count":  mod(func(b []byte) []byte { b[21] = 2; return b }),
		"zero count":      mod(func(b []byte) []byte { b[25] = 0; return b }),
		"final on first":  mod(func(b []byte) []byte { b[26] = 1; return b }),
		"unknown flags":   mod(func(b []byte) []byte { b[26] = 4; return b }),
		"oversize sealed": append(good.AppendUp(nil), make([]byte, MaxSealedChunk)...),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseChunkUp(in); !errors.Is(err, ErrFrame) {
				t.Fatalf("ParseChunkUp = %v, want ErrFrame", err)
			}
		})
	}
	last := Chunk{Index: 1, Count: 2, Final: false, Sealed: make([]byte, 32)}
	if _, err := ParseChunkUp(last.AppendUp(nil)); !errors.Is(err, ErrFrame) {
		t.Fatalf("last chunk without final flag accepted: %v", err)
	}
	d := ChunkDown{Item: 0, Chunk: good}
	if _, err := ParseChunkDown(append(d.DownHeader(), good.Sealed...)); !errors.Is(err, ErrFrame) {
		t.Fatalf("item 0 accepted: %v", err)
	}
}

func TestDCMessages(t *testing.T) {
	good := []*DCMessage{
		{Kind: DCConfirm, Tag: bytes.Repeat([]byte{1}, 32)},
		{Kind: DCManifest, File: [16]byte{2}, Chunks: 3, Sealed: []byte("sealed manifest")},
		{Kind: DCProgress, File: [16]byte{3}, Chunks: 64},
		{Kind: DCDone, File: [16]byte{4}},
		{Kind: DCDone, File: [16]byte{4}, Failed: true, Reason: "SHA-256 mismatch"},
	}
	for _, m := range good {
		b := AppendDC(nil, m)
		got, err := ParseDC(b)
		if err != nil {
			t.Fatalf("ParseDC(%x): %v", m.Kind, err)
		}
		if !bytes.Equal(AppendDC(nil, got), b) {
			t.Fatalf("kind %x does not round-trip", m.Kind)
		}
	}
	bad := map[string][]byte{
		"empty":          nil,
		"unknown kind":   {0x99},
		"short tag":      append([]byte{DCConfirm}, make([]byte, 31)...),
		"zero chunks":    AppendDC(nil, &DCMessage{Kind: DCManifest, Sealed: []byte("x")}),
		"empty manifest": AppendDC(nil, &DCMessage{Kind: DCManifest, Chunks: 1}),
		"long progress":  append(AppendDC(nil, &DCMessage{Kind: DCProgress, Chunks: 1}), 0),
		"bad status":     append(append([]byte{DCDone}, make([]byte, 16)...), 7),
		"bad utf8":       append(append([]byte{DCDone}, make([]byte, 17)...), 0xff),
		"oversize":       make([]byte, DCMaxMessage+1),
	}
	for name, b := range bad {
		if _, err := ParseDC(b); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: ParseDC = %v, want ErrFrame", name, err)
		}
	}
}
