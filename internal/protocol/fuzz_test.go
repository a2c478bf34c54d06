package protocol

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
)

func jsonMarshal(m *Message) ([]byte, error) { return json.Marshal(m) }

// FuzzDecode: no input may panic, and whatever Decode accepts must encode
// and decode again to the same message.
func FuzzDecode(f *testing.F) {
	j, _ := jsonMarshal(validJoin())
	f.Add(j)
	f.Add([]byte(`{"t":"ack","ids":[1,2]}`))
	f.Add([]byte(`{"t":"msg","data":"AAAA","file":"` + idA + `","chunks":2}`))
	f.Add([]byte(`{"t":"welcome","v":3,"member":"` + idA + `","members":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("re-encoded message rejected: %v", err)
		}
	})
}

// FuzzChunkUp: no panic; accepted frames re-encode to the same bytes.
func FuzzChunkUp(f *testing.F) {
	c := Chunk{Index: 1, Count: 2, Final: true, Sealed: make([]byte, 40)}
	f.Add(c.AppendUp(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseChunkUp(data)
		if err != nil {
			return
		}
		if got := c.AppendUp(nil); string(got) != string(data) {
			t.Fatalf("re-encoded frame differs")
		}
	})
}

// FuzzChunkDown: no panic; accepted frames re-encode to the same bytes.
func FuzzChunkDown(f *testing.F) {
	d := ChunkDown{Item: 3, Chunk: Chunk{Index: 0, Count: 1, Final: true, Sealed: make([]byte, 16)}}
	f.Add(append(d.DownHeader(), d.Sealed...))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseChunkDown(data)
		if err != nil {
			return
		}
		if got := append(d.DownHeader(), d.Sealed...); string(got) != string(data) {
			t.Fatalf("re-encoded frame differs")
		}
	})
}

// FuzzParseDC: no panic; accepted messages re-encode to the same bytes.
func FuzzParseDC(f *testing.F) {
	for _, m := range []*DCMessage{
		{Kind: DCConfirm, Tag: make([]byte, 32)},
		{Kind: DCManifest, Chunks: 3, Sealed: []byte("sealed")},
		{Kind: DCProgress, Chunks: 64},
		{Kind: DCDone, Failed: true, Reason: "bad chunk"},
		{Kind: DCHave, Flags: HaveFull, Ranges: [][2]uint32{{0, 3}, {5, 9}}},
		{Kind: DCWant, Any: 64, Indices: []uint32{1, 7}},
		{Kind: DCHashReq, Piece: 2},
		{Kind: DCHashes, Piece: 0, Hashes: make([]byte, 64)},
		{Kind: DCCancel},
	} {
		f.Add(AppendDC(nil, m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseDC(data)
		if err != nil {
			return
		}
		if got := AppendDC(nil, m); string(got) != string(data) {
			t.Fatalf("re-encoded message differs")
		}
	})
}

// FuzzDecodeSignal: no panic; an accepted signal encodes and decodes again.
func FuzzDecodeSignal(f *testing.F) {
	f.Add([]byte(`{"kind":"offer","session":"s1","mode":"direct","sdp":"v=0"}`))
	f.Add([]byte(`{"kind":"candidate","session":"s1","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`))
	f.Add([]byte(`{"kind":"have","session":"f","file":"f","have":[[0,3],[5,9]]}`))
	f.Add([]byte(`{"kind":"decline","session":"s1","reason":"no"}`))
	f.Add([]byte(`{"kind":"lib","session":"f","file":"f","origin":"o","chunks":3,"env":"AAAA","have":[[0,3]],"done":true}`))
	f.Add([]byte(`{"kind":"hist","session":"h","items":[{"from":"o","env":"AAAA"}]}`))
	f.Add([]byte(`{"kind":"name","session":"n","name":"Brave Otter"}`))
	f.Add([]byte(`{"kind":"xfer","session":"f","file":"f","op":"decline"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSignal(data)
		if err != nil {
			return
		}
		b, err := EncodeSignal(s)
		if err != nil {
			t.Fatalf("accepted signal does not encode: %v", err)
		}
		if _, err := DecodeSignal(b); err != nil {
			t.Fatalf("re-encoded signal rejected: %v", err)
		}
	})
}

// FuzzReadHTTPFrame: no input may panic, and every frame ReadHTTPFrame
// accepts must append to the same bytes it was read from.
func FuzzReadHTTPFrame(f *testing.F) {
	f.Add(AppendHTTPFrame(AppendHTTPFrame(nil, HTTPText, []byte(`{"t":"ack","ids":[1]}`)), HTTPBinary, []byte{1, 2, 3}))
	f.Add(AppendHTTPFrame(nil, HTTPClose, []byte{3, 232, 'o', 'k'}))
	f.Add([]byte{HTTPBinary, 0, 1, 0, 1})
	f.Add([]byte{7, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			start := len(in) - r.Len()
			op, data, err := ReadHTTPFrame(r)
			if err != nil {
				return
			}
			end := len(in) - r.Len()
			if !bytes.Equal(AppendHTTPFrame(nil, op, data), in[start:end]) {
				t.Fatalf("frame at %d does not re-encode to its bytes", start)
			}
		}
	})
}

// FuzzValidID: the hand-written check accepts exactly what the UUID
// pattern accepts.
func FuzzValidID(f *testing.F) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, s := range []string{"0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "0F8E9C1A-2B3C-4D5E-8F90-A1B2C3D4E5F6",
		"0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f", "0f8e9c1a2b3c-4d5e-8f90-a1b2c3d4e5f6-", "", "g0000000-0000-0000-0000-000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidID(s), re.MatchString(s); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

// FuzzEncodeMsg: the hand-built msg encoding is Encode's, byte for byte,
// and refuses what Encode refuses.
func FuzzEncodeMsg(f *testing.F) {
	f.Add(uint64(7), "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "", uint32(0), []byte("sealed"))
	f.Add(uint64(1<<40), "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "1f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", uint32(3), []byte{0, 1, 2, 0xff})
	f.Add(uint64(0), "x", "y", uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, id uint64, from, file string, chunks uint32, data []byte) {
		fast, ferr := EncodeMsg(id, from, file, chunks, data)
		slow, serr := Encode(&Message{Type: TypeMsg, ID: id, From: from, File: file, Chunks: chunks, Data: EncodeB64(data)})
		if (ferr == nil) != (serr == nil) || !bytes.Equal(fast, slow) {
			t.Fatalf("EncodeMsg = %q, %v; Encode = %q, %v", fast, ferr, slow, serr)
		}
	})
}

func TestEncodeMsgAtLimits(t *testing.T) {
	from := "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
	for _, n := range []int{1, MaxEnvelopeBytes - 1, MaxEnvelopeBytes, MaxEnvelopeBytes + 1} {
		data := bytes.Repeat([]byte{0xfb}, n)
		fast, ferr := EncodeMsg(99, from, from, MaxChunks, data)
		slow, serr := Encode(&Message{Type: TypeMsg, ID: 99, From: from, File: from, Chunks: MaxChunks, Data: EncodeB64(data)})
		if (ferr == nil) != (serr == nil) || !bytes.Equal(fast, slow) {
			t.Fatalf("%d bytes: EncodeMsg error %v, Encode error %v, equal %v", n, ferr, serr, bytes.Equal(fast, slow))
		}
	}
}

// BenchmarkEncodeMsg: a chat delivery's msg, hand-built beside Encode (the
// baseline: validation and encoding/json), as a ratio.
func BenchmarkEncodeMsg(b *testing.B) {
	from, data := "0f8e9c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", bytes.Repeat([]byte{7}, 352)
	var fastNs, slowNs float64
	b.Run("hand-built", func(b *testing.B) {
		for b.Loop() {
			_, _ = EncodeMsg(12345, from, "", 0, data)
		}
		fastNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("encode-baseline", func(b *testing.B) {
		for b.Loop() {
			_, _ = Encode(&Message{Type: TypeMsg, ID: 12345, From: from, Data: EncodeB64(data)})
		}
		slowNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if fastNs > 0 {
		b.Logf("msg encoding: hand-built %.0f ns, Encode %.0f ns: %.1fx faster", fastNs, slowNs, slowNs/fastNs)
	}
}
