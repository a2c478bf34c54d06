package transfer

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"cloakroom/internal/crypto"
)

func testManifest(chunks uint32) *crypto.Manifest {
	return &crypto.Manifest{
		File: "7f7e3c1c-1111-4222-8333-444455556666", Name: "x.bin", Size: int64(chunks)*1000 - 7, ChunkSize: 1000, Chunks: chunks,
		SHA256: "aa" + string(bytes.Repeat([]byte("0"), 62)),
	}
}

// TestPartialResumes: a partial file's bitmap survives closing and opening
// again; a sidecar that does not match the manifest starts the file over.
func TestPartialResumes(t *testing.T) {
	dir := t.TempDir()
	man := testManifest(21)
	f, part, hm, err := openPartial(dir, man)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint32{0, 1, 2, 7, 8, 20} {
		if _, err := f.WriteAt([]byte{byte(i)}, int64(i)*1000); err != nil {
			t.Fatal(err)
		}
		hm.set(i)
	}
	if err := hm.flush(); err != nil {
		t.Fatal(err)
	}
	want := [][2]uint32{{0, 3}, {7, 9}, {20, 21}}
	if got := hm.ranges(man.Chunks); !slices.Equal(got, want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	f.Close()
	hm.side.Close()

	f2, part2, hm2, err := openPartial(dir, man)
	if err != nil {
		t.Fatal(err)
	}
	if part2 != part || !slices.Equal(hm2.ranges(man.Chunks), want) {
		t.Fatalf("reopened %s with %v, want %s with %v", part2, hm2.ranges(man.Chunks), part, want)
	}
	b := make([]byte, 1)
	if _, err := f2.ReadAt(b, 7000); err != nil || b[0] != 7 {
		t.Fatalf("partial file lost its bytes: %v %v", b, err)
	}
	f2.Close()
	hm2.side.Close()

	// Same content name, other chunk size: the sidecar does not match, the
	// partial file starts over empty.
	other := *man
	other.ChunkSize, other.Chunks = 500, 42
	f3, _, hm3, err := openPartial(dir, &other)
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Close()
	defer hm3.side.Close()
	if r := hm3.ranges(other.Chunks); len(r) != 0 {
		t.Fatalf("mismatched sidecar kept: %v", r)
	}
	if st, _ := f3.Stat(); st.Size() != 0 {
		t.Fatalf("partial file not emptied: %d bytes", st.Size())
	}
	removePartial(part)
	if _, err := os.Stat(sidecarOf(part)); !os.IsNotExist(err) {
		t.Fatalf("sidecar left: %v", err)
	}
}

// FuzzParseHave: whatever a crash or another program left in a sidecar, it
// is refused or yields a bitmap of exactly the manifest's chunks, with no
// bit past the last chunk.
func FuzzParseHave(f *testing.F) {
	man := testManifest(13)
	good := append(haveHeader(man), 0xff, 0x1f)
	f.Add(good)
	f.Add(append(haveHeader(man), 0xff, 0x3f))
	f.Add([]byte(haveMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		bits, err := parseHave(data, man)
		if err != nil {
			return
		}
		if len(bits) != 2 || bits[1]>>5 != 0 {
			t.Fatalf("accepted bitmap %x for 13 chunks", bits)
		}
		if !bytes.Equal(data[:haveHeaderLen], haveHeader(man)) {
			t.Fatalf("accepted a header that is not the manifest's")
		}
	})
}
