package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Fuzz targets for every decoder of untrusted bytes. They must never panic
// and must only return the documented errors.

func FuzzParseInvite(f *testing.F) {
	s := testSecret(f)
	for _, seed := range []string{
		s.Fragment(), "#" + s.Fragment(), s.MiniCode(), strings.ToLower(s.MiniCode()), s.Link("https://h.example:8443"),
		"http://[::1]:80/#" + s.MiniCode(), "https://h/#", "://#", "#", "", "  ", "U", "0000-0000-0000-0000-0000-0000-000",
		"https://user:pw@h.example/p?q=1#" + s.Fragment(), "ftp://x/#" + s.Fragment(), "https://h/%zz#a", "é",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		server, got, err := ParseInvite(in)
		if err != nil {
			if !errors.Is(err, ErrBadSecret) && !errors.Is(err, ErrTypo) {
				t.Fatalf("ParseInvite(%q): unexpected error %v", in, err)
			}
			if server != "" || got != (Secret{}) {
				t.Fatal("value returned with an error")
			}
			return
		}
		// Whatever parsed must re-encode to forms that parse to the same secret.
		for _, form := range []string{got.Fragment(), got.MiniCode()} {
			if _, again, err := ParseInvite(form); err != nil || again != got {
				t.Fatalf("re-parse of %q: %x, %v", form, again, err)
			}
		}
		if server != "" && !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
			t.Fatalf("server %q", server)
		}
	})
}

func FuzzOpenEnvelope(f *testing.F) {
	k := testRoom(f)
	meta := EnvelopeMeta{Sender: memberA, File: testFileID, Chunks: 3}
	_, sealed, _ := k.SealEnvelope(meta, []byte("hello"))
	_, empty, _ := k.SealEnvelope(EnvelopeMeta{Sender: memberA}, nil)
	f.Add(sealed, memberA, testFileID, uint32(3), []byte("x"))
	f.Add(empty, memberA, "", uint32(0), []byte{})
	f.Add(sealed[:93], memberB, "", uint32(0), []byte(nil))
	f.Add([]byte{1}, "", "", uint32(0), []byte("plain"))
	f.Fuzz(func(t *testing.T, sealed []byte, sender, file string, chunks uint32, plaintext []byte) {
		meta := EnvelopeMeta{Sender: sender, File: file, Chunks: chunks}
		if _, pt, err := k.OpenEnvelope(meta, sealed); err != nil {
			if !errors.Is(err, ErrOpen) || pt != nil {
				t.Fatalf("OpenEnvelope: %q, %v", pt, err)
			}
		}
		// Round trip of the fuzzed plaintext and meta.
		id, s, err := k.SealEnvelope(meta, plaintext)
		if err != nil {
			return // oversize id
		}
		gotID, pt, err := k.OpenEnvelope(meta, s)
		if err != nil || gotID != id || !bytes.Equal(pt, plaintext) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzOpenManifest(f *testing.F) {
	k := testRoom(f)
	m := testManifest(f)
	good, _ := marshalManifest(m)
	sealed, _ := k.SealManifest(memberA, m)
	f.Add(good, testFileID, uint32(3), []byte(nil))
	f.Add([]byte(`{"kind":"file","file":"`+testFileID+`","name":"a","size":0,"chunkSize":1,"chunks":1,"sha256":"`+strings.Repeat("0", 64)+`","key":"`+strings.Repeat("A", 43)+`"}`), testFileID, uint32(1), []byte(nil))
	f.Add([]byte(`{"kind":"file","Size":1e309}`), testFileID, uint32(1), []byte(nil))
	withPreview := *m
	withPreview.Duration, withPreview.Poster = 61.5, testPoster(40)
	pv, _ := marshalManifest(&withPreview)
	f.Add(pv, testFileID, uint32(3), []byte(nil))
	f.Add(bytes.Replace(pv, []byte(`"duration":61.5`), []byte(`"duration":1e999`), 1), testFileID, uint32(3), []byte(nil))
	f.Add([]byte(`null`), "", uint32(0), sealed)
	f.Fuzz(func(t *testing.T, plaintext []byte, file string, chunks uint32, raw []byte) {
		meta := EnvelopeMeta{Sender: memberA, File: file, Chunks: chunks}
		if raw != nil {
			if got, err := k.OpenManifest(meta, raw); err == nil && got == nil {
				t.Fatal("nil manifest without error")
			}
		}
		// Seal the fuzzed JSON honestly so that validation is exercised.
		_, s, err := k.SealEnvelope(meta, plaintext)
		if err != nil {
			return
		}
		got, err := k.OpenManifest(meta, s)
		if err != nil {
			return
		}
		// An accepted manifest is valid, consistent with meta, and re-seals.
		if validateManifest(got) != nil || got.File != file || got.Chunks != chunks || chunkCount(got.Size, got.ChunkSize) != chunks {
			t.Fatalf("accepted an invalid manifest %+v", got)
		}
		s2, err := k.SealManifest(memberA, got)
		if err != nil {
			t.Fatalf("re-seal: %v", err)
		}
		if again, err := k.OpenManifest(meta, s2); err != nil || !reflect.DeepEqual(*again, *got) {
			t.Fatalf("re-open: %+v, %v", again, err)
		}
	})
}

func FuzzOpenSignal(f *testing.F) {
	k := testRoom(f)
	ab, _ := pairs(f, k)
	s1, _ := ab.SealSignal([]byte("offer"))
	s2, _ := ab.SealSignal(nil)
	f.Add(s1, s2)
	f.Add(s2, s1)
	f.Add(s1, s1)
	f.Add([]byte{}, make([]byte, 24))
	f.Add(bytes.Repeat([]byte{0xff}, 30), s1)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		_, ba := pairs(t, k)
		var last uint64
		for _, in := range [][]byte{a, b, a} {
			pt, err := ba.OpenSignal(in)
			switch {
			case err == nil:
				c := binary.BigEndian.Uint64(in)
				if c <= last {
					t.Fatalf("accepted counter %d after %d", c, last)
				}
				last = c
			case errors.Is(err, ErrOpen), errors.Is(err, ErrReplay):
				if pt != nil {
					t.Fatal("plaintext with an error")
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

func FuzzChunkOpen(f *testing.F) {
	fx := newChunkFixture(f)
	for i, s := range fx.sealed {
		f.Add(uint32(i), i == 2, s, []byte("x"))
	}
	f.Add(uint32(3), true, fx.sealed[2], []byte(nil))
	f.Add(uint32(0xffffffff), false, []byte{}, []byte{})
	f.Add(uint32(1), true, make([]byte, 15), make([]byte, 100))
	f.Fuzz(func(t *testing.T, index uint32, final bool, sealed []byte, plaintext []byte) {
		pt, err := fx.c.Open(nil, index, final, sealed)
		if err != nil {
			if !errors.Is(err, ErrOpen) || pt != nil {
				t.Fatalf("Open: %x, %v", pt, err)
			}
		} else if int(index) >= len(fx.sealed) || !bytes.Equal(sealed, fx.sealed[index]) {
			t.Fatalf("Open accepted a chunk that was never sealed (index %d)", index)
		}
		// Round trip of the fuzzed plaintext at a valid index, in place.
		i := index % fx.count
		s := fx.c.Seal(nil, i, plaintext)
		got, err := fx.c.Open(s[:0], i, i == fx.count-1, s)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip at %d: %v", i, err)
		}
	})
}
