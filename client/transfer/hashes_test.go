package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

var updateHashVectors = flag.Bool("update-hash-vectors", false, "rewrite testdata/hash_vectors.json")

// hashVector is one case of testdata/hash_vectors.json, which
// scripts/hash-vectors.mjs checks the browser's code against.
type hashVector struct {
	Name        string   `json:"name"`
	ChunkSize   int      `json:"chunkSize"`
	Size        int64    `json:"size"`
	Content     string   `json:"content"` // byte i is (i*7 + i/251) mod 256; hex of the first 64 bytes for eyeballing
	SHA256      string   `json:"sha256"`
	ChunkHashes []string `json:"chunkHashes"` // hex, first and last 3
	Pieces      int      `json:"pieces"`
	Hashes      []string `json:"hashes"` // the manifest's commitment
}

func vectorContent(size int64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func makeHashVector(name string, size int64, cs int) hashVector {
	content := vectorContent(size)
	sum, ch, commit, err := HashFile(bytes.NewReader(content), size, cs)
	if err != nil {
		panic(err)
	}
	n := len(ch) / 32
	var shown []string
	for i := range n {
		if i < 3 || i >= n-3 {
			shown = append(shown, hex.EncodeToString(ch[32*i:32*i+32]))
		}
	}
	return hashVector{Name: name, ChunkSize: cs, Size: size, Content: hex.EncodeToString(content[:min(64, len(content))]),
		SHA256: hex.EncodeToString(sum[:]), ChunkHashes: shown, Pieces: len(commit), Hashes: commit}
}

// TestHashVectors: Go's chunk hashes and piece commitment agree with the
// vectors the browser is checked against; the cases cover an empty file,
// one short chunk, an exact piece and a piece and a bit.
func TestHashVectors(t *testing.T) {
	got := []hashVector{
		makeHashVector("empty file", 0, 16),
		makeHashVector("one short chunk", 10, 16),
		makeHashVector("exactly one piece", 2000*4, 4),
		makeHashVector("one piece and a short chunk", 2000*3+2, 3),
		makeHashVector("three pieces, real chunk size", 4001*1000+17, 1000),
	}
	path := "testdata/hash_vectors.json"
	if *updateHashVectors {
		b, _ := json.MarshalIndent(map[string]any{"hashesPerPiece": protocol.HashesPerPiece, "cases": got}, "", " ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want struct {
		HashesPerPiece int          `json:"hashesPerPiece"`
		Cases          []hashVector `json:"cases"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if want.HashesPerPiece != protocol.HashesPerPiece || protocol.HashesPerPiece != crypto.HashesPerPiece {
		t.Fatalf("hashes per piece: vectors %d, protocol %d, crypto %d", want.HashesPerPiece, protocol.HashesPerPiece, crypto.HashesPerPiece)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want.Cases)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("hash vectors changed:\n got %s\nwant %s", gb, wb)
	}
	if got[4].Pieces != 3 || got[3].Pieces != 2 || got[2].Pieces != 1 {
		t.Fatalf("piece counts %d %d %d", got[2].Pieces, got[3].Pieces, got[4].Pieces)
	}
}

// TestHashListChecks: a piece must match the commitment; a chunk is checked
// against its hash; a chunk whose piece is unknown is not accepted.
func TestHashListChecks(t *testing.T) {
	content := vectorContent(4001*100 + 5)
	_, ch, commit, err := HashFile(bytes.NewReader(content), int64(len(content)), 100)
	if err != nil {
		t.Fatal(err)
	}
	man := &crypto.Manifest{Chunks: crypto.ChunkCount(int64(len(content)), 100), Hashes: commit}
	h, err := NewHashList(man)
	if err != nil || h.Pieces() != 3 {
		t.Fatalf("NewHashList: %v, %v", h, err)
	}
	if err := h.Check(5, content[500:600]); err == nil || errors.Is(err, ErrBadChunk) {
		t.Fatalf("check before the piece: %v", err)
	}
	bad := bytes.Clone(ch[:32*2000])
	bad[7] ^= 1
	if err := h.SetPiece(0, bad); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("tampered piece accepted: %v", err)
	}
	if err := h.SetPiece(0, ch[:32*2000]); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(5, content[500:600]); err != nil {
		t.Fatalf("good chunk: %v", err)
	}
	wrong := bytes.Clone(content[500:600])
	wrong[0] ^= 1
	if err := h.Check(5, wrong); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("wrong chunk: %v", err)
	}
	if got := h.Missing(); len(got) != 2 || got[0] != 1 {
		t.Fatalf("missing %v", got)
	}
	if err := h.Fill(ch); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(4000, content[400000:400100]); err != nil || len(h.Missing()) != 0 {
		t.Fatalf("after fill: %v %v", err, h.Missing())
	}
}

// FuzzHashPiece: a hash piece from a member (untrusted bytes, any index)
// never panics and is accepted only when it is the committed piece.
func FuzzHashPiece(f *testing.F) {
	content := vectorContent(2500 * 10)
	_, ch, commit, err := HashFile(bytes.NewReader(content), int64(len(content)), 10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), ch[:32*2000])
	f.Add(uint32(1), ch[32*2000:])
	f.Add(uint32(7), []byte("short"))
	f.Fuzz(func(t *testing.T, p uint32, piece []byte) {
		h, err := NewHashList(&crypto.Manifest{Chunks: 2500, Hashes: commit})
		if err != nil {
			t.Fatal(err)
		}
		err = h.SetPiece(p, piece)
		genuine := (p == 0 && bytes.Equal(piece, ch[:32*2000])) || (p == 1 && bytes.Equal(piece, ch[32*2000:]))
		if (err == nil) != genuine {
			t.Fatalf("SetPiece(%d, %d bytes) = %v, genuine %v", p, len(piece), err, genuine)
		}
		if err == nil {
			if got, ok := h.Piece(p); !ok || !bytes.Equal(got, piece) {
				t.Fatal("accepted piece not kept")
			}
		}
	})
}

// TestHashFileBatches: HashFile and ChunkHashes agree with one SHA-256 per
// chunk and over the whole, for sizes around the batch and chunk edges, and
// a short read fails (the whole-file goroutine ends either way).
func TestHashFileBatches(t *testing.T) {
	const cs = 1000
	for _, size := range []int64{0, 1, cs, hashBatch - 1, hashBatch, hashBatch + cs + 1, 5*hashBatch + 17} {
		content := vectorContent(size)
		sum, ch, _, err := HashFile(bytes.NewReader(content), size, cs)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if sum != sha256.Sum256(content) {
			t.Errorf("size %d: whole-file hash differs", size)
		}
		var want []byte
		for i := range int(crypto.ChunkCount(size, cs)) {
			lo := min(int64(i*cs), size)
			c := sha256.Sum256(content[lo:min(lo+cs, size)])
			want = append(want, c[:]...)
		}
		if !bytes.Equal(ch, want) {
			t.Errorf("size %d: chunk hashes differ", size)
		}
		only, err := ChunkHashes(bytes.NewReader(content), size, cs)
		if err != nil || !bytes.Equal(only, want) {
			t.Errorf("size %d: ChunkHashes differ (%v)", size, err)
		}
		if size > 0 {
			if _, _, _, err := HashFile(bytes.NewReader(content[:size-1]), size, cs); err == nil {
				t.Errorf("size %d: a short read passed", size)
			}
		}
	}
}
