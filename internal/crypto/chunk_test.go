package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testChunks is a 40-byte file cut into 16-byte chunks (3 chunks).
type chunkFixture struct {
	key     []byte
	room    [16]byte
	file    [16]byte
	content []byte
	cs      int
	count   uint32
	c       *ChunkCipher
	sealed  [][]byte
}

func newChunkFixture(t testing.TB) *chunkFixture {
	t.Helper()
	f := &chunkFixture{
		key: labelBytes("file key", 32), room: testRoom(t).RoomID, file: uuidBytes(t, testFileID),
		content: labelBytes("content", 40), cs: 16,
	}
	f.count = ChunkCount(int64(len(f.content)), f.cs)
	f.c = f.cipher(t, f.key, f.room, memberA, f.file, f.count, int64(len(f.content)))
	for i := uint32(0); i < f.count; i++ {
		f.sealed = append(f.sealed, f.c.Seal(nil, i, f.chunk(i)))
	}
	return f
}

func (f *chunkFixture) chunk(i uint32) []byte {
	end := min(int(i+1)*f.cs, len(f.content))
	return f.content[int(i)*f.cs : end]
}

func (f *chunkFixture) cipher(t testing.TB, key []byte, room [16]byte, sender string, file [16]byte, count uint32, size int64) *ChunkCipher {
	t.Helper()
	c, err := NewChunkCipher(key, room, sender, file, count, size)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChunkRoundTrip(t *testing.T) {
	f := newChunkFixture(t)
	if f.count != 3 {
		t.Fatalf("count %d", f.count)
	}
	var out []byte
	for i, s := range f.sealed {
		if len(s) != len(f.chunk(uint32(i)))+16 {
			t.Fatalf("chunk %d sealed to %d bytes", i, len(s))
		}
		var err error
		out, err = f.c.Open(out, uint32(i), i == len(f.sealed)-1, s)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if !bytes.Equal(out, f.content) {
		t.Fatal("content differs")
	}
	// Seal appends to dst; Open works in place.
	prefix := []byte("hdr")
	s := f.c.Seal(append([]byte(nil), prefix...), 1, f.chunk(1))
	if !bytes.Equal(s[:3], prefix) || !bytes.Equal(s[3:], f.sealed[1]) {
		t.Fatal("Seal did not append")
	}
	buf := append([]byte(nil), f.sealed[1]...)
	pt, err := f.c.Open(buf[:0], 1, false, buf)
	if err != nil || !bytes.Equal(pt, f.chunk(1)) {
		t.Fatalf("in-place Open = %x, %v", pt, err)
	}
	// An empty file is one empty chunk.
	e := f.cipher(t, f.key, f.room, memberA, f.file, ChunkCount(0, 16), 0)
	sealed := e.Seal(nil, 0, nil)
	if pt, err := e.Open(nil, 0, true, sealed); err != nil || len(pt) != 0 {
		t.Fatalf("empty chunk: %x, %v", pt, err)
	}
}

func TestChunkTamper(t *testing.T) {
	f := newChunkFixture(t)
	size := int64(len(f.content))
	other := f.cipher(t, f.key, f.room, memberA, uuidBytes(t, otherFileID), f.count, size)
	otherKey := f.cipher(t, labelBytes("other key", 32), f.room, memberA, f.file, f.count, size)
	otherRoom := f.cipher(t, f.key, DeriveRoom(Secret{7}).RoomID, memberA, f.file, f.count, size)
	otherSender := f.cipher(t, f.key, f.room, memberB, f.file, f.count, size)
	otherSize := f.cipher(t, f.key, f.room, memberA, f.file, f.count, size-1)
	// The relay drops the last chunk and claims the file had 2.
	shortened := f.cipher(t, f.key, f.room, memberA, f.file, 2, size)
	shortenedSize := f.cipher(t, f.key, f.room, memberA, f.file, 2, 32)

	tests := []struct {
		name   string
		c      *ChunkCipher
		index  uint32
		final  bool
		sealed []byte
	}{
		{"flip first byte", f.c, 0, false, flip(f.sealed[0], 0)},
		{"flip middle byte", f.c, 1, false, flip(f.sealed[1], 8)},
		{"flip tag", f.c, 2, true, flip(f.sealed[2], len(f.sealed[2])-1)},
		{"truncated", f.c, 0, false, f.sealed[0][:len(f.sealed[0])-1]},
		{"tag only, truncated", f.c, 0, false, f.sealed[0][:15]},
		{"empty", f.c, 0, false, nil},
		{"extended", f.c, 0, false, append(append([]byte(nil), f.sealed[0]...), 0)},
		{"swapped index 0<-1", f.c, 0, false, f.sealed[1]},
		{"swapped index 1<-0", f.c, 1, false, f.sealed[0]},
		{"last chunk at index 1", f.c, 1, false, f.sealed[2]},
		{"final flag set on first", f.c, 0, true, f.sealed[0]},
		{"final flag cleared on last", f.c, 2, false, f.sealed[2]},
		{"index beyond count", f.c, 3, false, f.sealed[2]},
		{"index beyond count, final", f.c, 3, true, f.sealed[2]},
		{"dropped last: penultimate as final", f.c, 1, true, f.sealed[1]},
		{"dropped last: count 2", shortened, 1, true, f.sealed[1]},
		{"dropped last: count 2, size 32", shortenedSize, 1, true, f.sealed[1]},
		{"dropped last: first of count 2", shortened, 0, false, f.sealed[0]},
		{"chunk from another file id", other, 0, false, f.sealed[0]},
		{"chunk under another file key", otherKey, 0, false, f.sealed[0]},
		{"wrong room", otherRoom, 0, false, f.sealed[0]},
		{"wrong sender", otherSender, 0, false, f.sealed[0]},
		{"wrong size", otherSize, 0, false, f.sealed[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			pt, err := tt.c.Open(dst, tt.index, tt.final, tt.sealed)
			if !errors.Is(err, ErrOpen) || pt != nil {
				t.Errorf("Open = %x, %v; want ErrOpen", pt, err)
			}
			if string(dst) != "keep" {
				t.Error("Open clobbered dst")
			}
		})
	}
}

func TestNewChunkCipherErrors(t *testing.T) {
	room, file := testRoom(t).RoomID, uuidBytes(t, testFileID)
	key := labelBytes("k", 32)
	tests := []struct {
		name   string
		key    []byte
		sender string
		count  uint32
		size   int64
	}{
		{"short key", key[:31], memberA, 1, 0},
		{"long key", append(key, 0), memberA, 1, 0},
		{"nil key", nil, memberA, 1, 0},
		{"zero count", key, memberA, 0, 0},
		{"negative size", key, memberA, 1, -1},
		{"long sender", key, strings.Repeat("s", 70000), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := NewChunkCipher(tt.key, room, tt.sender, file, tt.count, tt.size); err == nil || c != nil {
				t.Errorf("NewChunkCipher = %v, %v; want error", c, err)
			}
		})
	}
}

func TestChunkSealPanics(t *testing.T) {
	f := newChunkFixture(t)
	for _, fn := range map[string]func(){
		"index == count": func() { f.c.Seal(nil, f.count, nil) },
		"zero cipher":    func() { new(ChunkCipher).Seal(nil, 0, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn()
		}()
	}
	if _, err := new(ChunkCipher).Open(nil, 0, true, make([]byte, 16)); err == nil {
		t.Error("zero cipher opened")
	}
}

func TestChunkAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	f := newChunkFixture(t)
	pt := make([]byte, 64512)
	dst := make([]byte, 0, len(pt)+16)
	out := make([]byte, 0, len(pt))
	var sealed []byte
	seal := testing.AllocsPerRun(100, func() { sealed = f.c.Seal(dst[:0], 1, pt) })
	open := testing.AllocsPerRun(100, func() {
		if _, err := f.c.Open(out[:0], 1, false, sealed); err != nil {
			t.Fatal(err)
		}
	})
	if seal != 0 || open != 0 {
		t.Errorf("allocations per Seal %.1f, per Open %.1f; want 0", seal, open)
	}
}

func TestChunkConcurrent(t *testing.T) {
	f := newChunkFixture(t)
	big := f.cipher(t, f.key, f.room, memberA, f.file, 1000, 1000*100)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint32(g); i < 1000; i += 8 {
				pt := []byte(fmt.Sprintf("chunk %d", i))
				s := big.Seal(nil, i, pt)
				got, err := big.Open(nil, i, i == 999, s)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("chunk %d: %q, %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
