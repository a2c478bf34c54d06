package transfer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPlaceFileNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 3; i++ {
		part := filepath.Join(dir, ".part")
		if err := os.WriteFile(part, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := placeFile(dir, "photo.jpg", part)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Base(p))
	}
	want := []string{"photo.jpg", "photo (1).jpg", "photo (2).jpg"}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("placed as %v, want %v", paths, want)
		}
		b, _ := os.ReadFile(filepath.Join(dir, want[i]))
		if len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("%s holds %v, want [%d]", want[i], b, i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".part")); !os.IsNotExist(err) {
		t.Fatalf("partial file left behind: %v", err)
	}
}
