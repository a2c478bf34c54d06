package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	k := testRoom(t)
	metas := []EnvelopeMeta{
		{Sender: memberA},
		{Sender: memberA, File: testFileID, Chunks: 7},
	}
	for _, meta := range metas {
		for _, pt := range [][]byte{nil, []byte(`{"kind":"chat","text":"hi"}`), bytes.Repeat([]byte{0xab}, 30000)} {
			id, sealed, err := k.SealEnvelope(meta, pt)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != 1+16+12+48+len(pt)+16 || sealed[0] != Version || !bytes.Equal(sealed[1:17], id[:]) {
				t.Fatalf("bad envelope layout (%d bytes)", len(sealed))
			}
			gotID, got, err := k.OpenEnvelope(meta, sealed)
			if err != nil || gotID != id || !bytes.Equal(got, pt) || got == nil {
				t.Fatalf("OpenEnvelope = %x, %d bytes, %v", gotID, len(got), err)
			}
		}
	}
	id1, s1, _ := k.SealEnvelope(metas[0], []byte("same"))
	id2, s2, _ := k.SealEnvelope(metas[0], []byte("same"))
	if id1 == id2 || bytes.Equal(s1, s2) {
		t.Error("two envelopes share an id or bytes")
	}
	if _, _, err := k.SealEnvelope(EnvelopeMeta{Sender: strings.Repeat("x", 70000)}, nil); err == nil {
		t.Error("sealed with an oversize sender")
	}
}

func TestEnvelopeTamper(t *testing.T) {
	k := testRoom(t)
	meta := EnvelopeMeta{Sender: memberA, File: testFileID, Chunks: 3}
	_, sealed, err := k.SealEnvelope(meta, []byte("the quick brown fox"))
	if err != nil {
		t.Fatal(err)
	}
	other := testSecret(t)
	other[9] ^= 4
	regions := map[string]int{
		"version": 0, "id": 5, "nonce": 20, "wrapped key": 40, "wrapped tag": 1 + 16 + 12 + 40,
		"body": envelopeHeader + 2, "body tag": len(sealed) - 1,
	}
	for name, i := range regions {
		t.Run("flip "+name, func(t *testing.T) {
			if _, pt, err := k.OpenEnvelope(meta, flip(sealed, i)); !errors.Is(err, ErrOpen) || pt != nil {
				t.Errorf("OpenEnvelope = %q, %v", pt, err)
			}
		})
	}
	tests := []struct {
		name   string
		k      *RoomKeys
		meta   EnvelopeMeta
		sealed []byte
	}{
		{"wrong room", DeriveRoom(other), meta, sealed},
		{"wrong sender", k, EnvelopeMeta{Sender: memberB, File: meta.File, Chunks: 3}, sealed},
		{"wrong file", k, EnvelopeMeta{Sender: memberA, File: otherFileID, Chunks: 3}, sealed},
		{"no file", k, EnvelopeMeta{Sender: memberA}, sealed},
		{"wrong chunks", k, EnvelopeMeta{Sender: memberA, File: meta.File, Chunks: 4}, sealed},
		{"truncated", k, meta, sealed[:len(sealed)-1]},
		{"header only", k, meta, sealed[:envelopeHeader]},
		{"header and tag-1", k, meta, sealed[:envelopeHeader+15]},
		{"empty", k, meta, nil},
		{"appended byte", k, meta, append(append([]byte(nil), sealed...), 0)},
		{"version 2", k, meta, func() []byte { c := append([]byte(nil), sealed...); c[0] = 2; return c }()},
		{"oversize sender", k, EnvelopeMeta{Sender: strings.Repeat("x", 70000)}, sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, pt, err := tt.k.OpenEnvelope(tt.meta, tt.sealed); !errors.Is(err, ErrOpen) || pt != nil {
				t.Errorf("OpenEnvelope = %q, %v", pt, err)
			}
		})
	}
	// Moving the wrapped key to another envelope fails too.
	_, sealed2, _ := k.SealEnvelope(meta, []byte("the quick brown fox"))
	spliced := append(append([]byte(nil), sealed2[:envelopeHeader]...), sealed[envelopeHeader:]...)
	if _, _, err := k.OpenEnvelope(meta, spliced); !errors.Is(err, ErrOpen) {
		t.Errorf("spliced envelope opened: %v", err)
	}
}

func testManifest(t testing.TB) *Manifest {
	content := labelBytes("content", 40)
	sum := sha256.Sum256(content)
	return &Manifest{
		File: testFileID, Name: "été 2025.mp4", Type: "video/mp4", Size: 40, ChunkSize: 16,
		Chunks: 3, SHA256: hex.EncodeToString(sum[:]),
		Key: base64.RawURLEncoding.EncodeToString(labelBytes("file key", 32)),
	}
}

func TestManifestRoundTrip(t *testing.T) {
	k := testRoom(t)
	m := testManifest(t)
	for _, mod := range []func(*Manifest){
		func(*Manifest) {},
		func(m *Manifest) { m.Size, m.Chunks, m.Type = 0, 1, "" },
		func(m *Manifest) { m.Size, m.ChunkSize, m.Chunks = 1<<30, 64512, 16645 },
		func(m *Manifest) { m.Name = "<script>&amp;\u2028\"'.txt" },
		func(m *Manifest) { m.Name = strings.Repeat("é", 127) + "x" },
		func(m *Manifest) { m.Duration, m.Poster = 12.345, testPoster(16) },
		func(m *Manifest) { m.Duration, m.Poster = MaxDuration, testPoster(MaxPosterBytes) },
		func(m *Manifest) { m.Duration = 5e-324 },
	} {
		m := *m
		mod(&m)
		sealed, err := k.SealManifest(memberA, &m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.OpenManifest(EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}, sealed)
		if err != nil || !reflect.DeepEqual(*got, m) {
			t.Fatalf("OpenManifest = %+v, %v; want %+v", got, err, m)
		}
		// The plaintext carries "kind":"file".
		_, pt, _ := k.OpenEnvelope(EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}, sealed)
		var kind struct{ Kind string }
		if json.Unmarshal(pt, &kind); kind.Kind != "file" || !bytes.HasPrefix(pt, []byte(`{"kind":"file","file":`)) {
			t.Fatalf("manifest plaintext %s", pt)
		}
	}
}

func TestManifestInvalid(t *testing.T) {
	k := testRoom(t)
	good := testManifest(t)
	tests := []struct {
		name string
		mod  func(m *Manifest)
	}{
		{"file not uuid", func(m *Manifest) { m.File = "not-a-uuid" }},
		{"file upper case", func(m *Manifest) { m.File = strings.ToUpper(m.File) }},
		{"empty name", func(m *Manifest) { m.Name = "" }},
		{"dot", func(m *Manifest) { m.Name = "." }},
		{"dot dot", func(m *Manifest) { m.Name = ".." }},
		{"slash", func(m *Manifest) { m.Name = "../etc/passwd" }},
		{"absolute path", func(m *Manifest) { m.Name = "/etc/passwd" }},
		{"climbing path", func(m *Manifest) { m.Name = "photos/../../x" }},
		{"dot part", func(m *Manifest) { m.Name = "photos/./a.jpg" }},
		{"empty part", func(m *Manifest) { m.Name = "photos//a.jpg" }},
		{"trailing slash", func(m *Manifest) { m.Name = "photos/" }},
		{"only a slash", func(m *Manifest) { m.Name = "/" }},
		{"ends in dot dot", func(m *Manifest) { m.Name = "photos/.." }},
		{"backslash in a path", func(m *Manifest) { m.Name = `photos\..\x` }},
		{"backslash", func(m *Manifest) { m.Name = `..\boot.ini` }},
		{"nul", func(m *Manifest) { m.Name = "a\x00b" }},
		{"long name", func(m *Manifest) { m.Name = strings.Repeat("a", 256) }},
		{"negative size", func(m *Manifest) { m.Size = -1 }},
		{"chunk size zero", func(m *Manifest) { m.ChunkSize = 0 }},
		{"chunk size over", func(m *Manifest) { m.ChunkSize, m.Chunks = 64513, 1 }},
		{"chunks too few", func(m *Manifest) { m.Chunks = 2 }},
		{"chunks too many", func(m *Manifest) { m.Chunks = 4 }},
		{"chunks zero", func(m *Manifest) { m.Chunks = 0 }},
		{"empty file zero chunks", func(m *Manifest) { m.Size, m.Chunks = 0, 0 }},
		{"size beyond uint32 chunks", func(m *Manifest) { m.Size, m.ChunkSize, m.Chunks = math.MaxInt64, 1, math.MaxUint32 }},
		{"sha upper", func(m *Manifest) { m.SHA256 = strings.ToUpper(m.SHA256) }},
		{"sha short", func(m *Manifest) { m.SHA256 = m.SHA256[:62] }},
		{"sha not hex", func(m *Manifest) { m.SHA256 = "g" + m.SHA256[1:] }},
		{"key short", func(m *Manifest) { m.Key = base64.RawURLEncoding.EncodeToString(make([]byte, 31)) }},
		{"key padded", func(m *Manifest) { m.Key = base64.URLEncoding.EncodeToString(make([]byte, 32)) }},
		{"key std alphabet", func(m *Manifest) { m.Key = strings.Repeat("/", 43) }},
		{"key empty", func(m *Manifest) { m.Key = "" }},
		{"duration negative", func(m *Manifest) { m.Duration = -1 }},
		{"duration NaN", func(m *Manifest) { m.Duration = math.NaN() }},
		{"duration infinite", func(m *Manifest) { m.Duration = math.Inf(1) }},
		{"duration over 1e7", func(m *Manifest) { m.Duration = MaxDuration * 1.0000001 }},
		{"poster not a JPEG", func(m *Manifest) { m.Poster = base64.RawURLEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n")) }},
		{"poster of two bytes", func(m *Manifest) { m.Poster = base64.RawURLEncoding.EncodeToString([]byte{0xff, 0xd8}) }},
		{"poster one byte over", func(m *Manifest) { m.Poster = testPoster(MaxPosterBytes + 1) }},
		{"poster huge", func(m *Manifest) { m.Poster = testPoster(1 << 20) }},
		{"poster padded", func(m *Manifest) { m.Poster = base64.URLEncoding.EncodeToString([]byte{0xff, 0xd8, 0xff, 0xe0}) }},
		{"poster std alphabet", func(m *Manifest) { m.Poster = "_9j/" + strings.Repeat("+", 8) }},
		{"poster in a manifest over 16 KiB", func(m *Manifest) {
			// A 400-piece file (52 GB): the piece hashes alone take 18 kB.
			m.Poster = testPoster(100)
			m.Size, m.ChunkSize = 400*HashesPerPiece*64512, 64512
			m.Chunks = ChunkCount(m.Size, m.ChunkSize)
			m.Hashes = make([]string, 400)
			for i := range m.Hashes {
				m.Hashes[i] = base64.RawURLEncoding.EncodeToString(make([]byte, 32))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := *good
			tt.mod(&m)
			if _, err := k.SealManifest(memberA, &m); err == nil {
				t.Error("SealManifest accepted it")
			}
			// A sender who skips validation: the receiver still refuses.
			pt, _ := marshalManifest(&m)
			meta := EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}
			_, sealed, _ := k.SealEnvelope(meta, pt)
			if got, err := k.OpenManifest(meta, sealed); err == nil {
				t.Errorf("OpenManifest accepted %+v", got)
			}
		})
	}
}

// testPoster is a "JPEG" of n bytes: the FF D8 FF signature and filler
// (the manifest checks only the signature and the size).
func testPoster(n int) string {
	b := bytes.Repeat([]byte{0x5a}, n)
	copy(b, []byte{0xff, 0xd8, 0xff, 0xe0})
	return base64.RawURLEncoding.EncodeToString(b)
}

// Present means set: a manifest naming a duration of 0 or an empty poster
// (which the Go struct cannot tell from absent) is refused, as by the page;
// a manifest without either opens.
func TestManifestPreviewPresence(t *testing.T) {
	k := testRoom(t)
	m := testManifest(t)
	pt, _ := marshalManifest(m)
	meta := EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}
	for _, tc := range []struct {
		tail string
		ok   bool
	}{
		{``, true},
		{`,"duration":0`, false},
		{`,"duration":-0`, false},
		{`,"duration":"12"`, false},
		{`,"duration":1e999`, false},
		{`,"duration":null`, false},
		{`,"poster":""`, false},
		{`,"poster":null`, false},
		{`,"poster":123`, false},
		{`,"duration":61.5,"poster":"` + testPoster(3) + `"`, true},
		{`,"future":{"x":1}`, true}, // unknown keys are ignored
	} {
		raw := append(bytes.TrimSuffix(bytes.Clone(pt), []byte("}")), tc.tail+"}"...)
		_, sealed, _ := k.SealEnvelope(meta, raw)
		got, err := k.OpenManifest(meta, sealed)
		if (err == nil) != tc.ok {
			t.Errorf("%s: OpenManifest = %+v, %v; want ok=%v", tc.tail, got, err, tc.ok)
		} else if err != nil && !strings.Contains(err.Error(), "open manifest") {
			t.Errorf("%s: error %q does not say what failed", tc.tail, err)
		}
	}
}

// The largest manifest that may carry a poster, sealed, still fits a lib
// signal with a full have list (the bound of MaxPosterManifest).
func TestPosterManifestFitsLibSignal(t *testing.T) {
	const maxSignalBytes = 44 << 10 // protocol.MaxSignalBytes (crypto imports no other package)
	envelope := envelopeHeader + MaxPosterManifest + gcmTagLen
	lib := len(`{"kind":"lib","session":"","file":"","origin":"","chunks":16777216,"env":"","have":[],"done":false}`) +
		3*36 + b64.EncodedLen(envelope) + 1000*len(`[16777215,16777216],`)
	if sealed := signalCtrLen + lib + gcmTagLen; sealed > maxSignalBytes {
		t.Fatalf("a lib signal with the largest poster manifest is %d bytes sealed, over %d", sealed, maxSignalBytes)
	}
}

func TestManifestEnvelopeBinding(t *testing.T) {
	k := testRoom(t)
	m := testManifest(t)
	sealed, err := k.SealManifest(memberA, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, meta := range []EnvelopeMeta{
		{Sender: memberB, File: m.File, Chunks: m.Chunks},
		{Sender: memberA, File: otherFileID, Chunks: m.Chunks},
		{Sender: memberA, File: m.File, Chunks: m.Chunks + 1},
		{Sender: memberA},
	} {
		if _, err := k.OpenManifest(meta, sealed); err == nil {
			t.Errorf("OpenManifest with meta %+v accepted", meta)
		}
	}
	// A manifest whose fields disagree with an honestly sealed envelope's meta.
	pt, _ := marshalManifest(m)
	for _, meta := range []EnvelopeMeta{
		{Sender: memberA, File: otherFileID, Chunks: m.Chunks},
		{Sender: memberA, File: m.File, Chunks: m.Chunks + 1},
	} {
		_, s, _ := k.SealEnvelope(meta, pt)
		if _, err := k.OpenManifest(meta, s); err == nil {
			t.Errorf("manifest inside envelope %+v accepted", meta)
		}
	}
	if _, err := k.SealManifest(memberA, nil); err == nil {
		t.Error("SealManifest(nil) accepted")
	}
}

func TestManifestJSON(t *testing.T) {
	k := testRoom(t)
	m := testManifest(t)
	good, _ := marshalManifest(m)
	meta := EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}
	replace := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	tests := []struct {
		name string
		json string
		ok   bool
	}{
		{"canonical", string(good), true},
		{"unknown key ignored", replace(`{"kind":"file",`, `{"x":[1,{}],"kind":"file",`), true},
		{"no type", replace(`"type":"video/mp4",`, ``), true},
		{"duplicate key, last wins", replace(`"name":`, `"name":"first","name":`), true},
		{"whitespace", replace(`,"size":`, ` ,
 "size" : `), true},
		{"chat kind", replace(`"kind":"file"`, `"kind":"chat"`), false},
		{"no kind", replace(`"kind":"file",`, ``), false},
		{"key in other case", replace(`"size":`, `"Size":`), false},
		{"null name", replace(`"name":"été 2025.mp4"`, `"name":null`), false},
		{"size as string", replace(`"size":40`, `"size":"40"`), false},
		{"size fraction", replace(`"size":40`, `"size":40.5`), false},
		{"chunks negative", replace(`"chunks":3`, `"chunks":-3`), false},
		{"not an object", `[1,2]`, false},
		{"null", `null`, false},
		{"truncated", string(good[:len(good)-1]), false},
		{"trailing garbage", string(good) + "x", false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, sealed, _ := k.SealEnvelope(meta, []byte(tt.json))
			got, err := k.OpenManifest(meta, sealed)
			if tt.ok != (err == nil) {
				t.Fatalf("OpenManifest(%s) = %+v, %v", tt.json, got, err)
			}
		})
	}
}

func TestChunkCount(t *testing.T) {
	tests := []struct {
		size int64
		cs   int
		want uint32
	}{
		{0, 64512, 1}, {1, 64512, 1}, {64512, 64512, 1}, {64513, 64512, 2},
		{1 << 30, 64512, 16645}, {40, 16, 3}, {48, 16, 3}, {49, 16, 4},
		{math.MaxUint32, 1, math.MaxUint32}, {math.MaxUint32 + 1, 1, 0},
		{math.MaxInt64, 64512, 0}, {-1, 16, 0}, {10, 0, 0}, {10, -5, 0},
	}
	for _, tt := range tests {
		if got := ChunkCount(tt.size, tt.cs); got != tt.want {
			t.Errorf("ChunkCount(%d, %d) = %d, want %d", tt.size, tt.cs, got, tt.want)
		}
	}
}

// TestManifestRelativePath: a file sent from a folder is named by its path
// in the folder; the name survives sealing and opening, and a receiver that
// writes to disk flattens it (client/transfer.SafeName, tested there).
func TestManifestRelativePath(t *testing.T) {
	k := testRoom(t)
	for _, name := range []string{"photos/2024/a.jpg", "a/b", "..a/b..", "...x/y", "dir.d/.hidden"} {
		m := *testManifest(t)
		m.Name = name
		sealed, err := k.SealManifest(memberA, &m)
		if err != nil {
			t.Fatalf("%q: SealManifest: %v", name, err)
		}
		meta := EnvelopeMeta{Sender: memberA, File: m.File, Chunks: m.Chunks}
		got, err := k.OpenManifest(meta, sealed)
		if err != nil {
			t.Fatalf("%q: OpenManifest: %v", name, err)
		}
		if got.Name != name {
			t.Errorf("name %q came back as %q", name, got.Name)
		}
	}
}
