package transfer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"cloakroom/internal/crypto"
)

// box is an ISO BMFF box with a 32-bit size.
func box(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

// TestNewManifestDuration: an .mp4 (moov after mdat) gets the duration of
// its mvhd in the manifest, which seals and opens; the same bytes under
// another extension get none.
func TestNewManifestDuration(t *testing.T) {
	mvhd := make([]byte, 100)
	binary.BigEndian.PutUint32(mvhd[12:], 90000)   // timescale
	binary.BigEndian.PutUint32(mvhd[16:], 5554321) // 61.714677… s
	content := append(append(box("ftyp", []byte("isom")), box("mdat", make([]byte, 100000))...), box("moov", box("mvhd", mvhd))...)
	dir := t.TempDir()
	k := crypto.DeriveRoom(crypto.Secret{1})
	for name, want := range map[string]float64{"clip.mp4": 61.715, "CLIP.MOV": 61.715, "clip.m4v": 61.715, "clip.bin": 0, "clip.mkv": 0} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		man, _, _, err := NewManifest(f, st)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if man.Duration != want || man.Poster != "" {
			t.Errorf("%s: duration %v, poster %q; want %v and none", name, man.Duration, man.Poster, want)
		}
		sealed, err := k.SealManifest("3f1c9a2e-7b4d-4e8a-9c61-0d2f5e8b7a14", man)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.OpenManifest(crypto.EnvelopeMeta{Sender: "3f1c9a2e-7b4d-4e8a-9c61-0d2f5e8b7a14", File: man.File, Chunks: man.Chunks}, sealed)
		if err != nil || got.Duration != want {
			t.Errorf("%s: opened %+v, %v", name, got, err)
		}
	}
}
