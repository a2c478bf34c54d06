package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeName(t *testing.T) {
	cases := map[string]string{
		"video.mp4":          "video.mp4",
		"../../etc/passwd":   "_.._etc_passwd",
		"a\\b":               "a_b",
		".bashrc":            "bashrc",
		"evil\x1b[2Jname":    "evil_[2Jname",
		"gpj.\u202eexe":      "gpj._exe",
		"...":                "unnamed",
		"ok name (1).tar.gz": "ok name (1).tar.gz",
		"tab\there\nnewline": "tab_here_newline",
	}
	for in, want := range cases {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

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

func TestChatPlaintextPadded(t *testing.T) {
	texts := []string{"", "hi", "a somewhat longer message with \"quotes\" and ünïcode", string(make([]byte, 300))}
	// Every length across two pad boundaries, including the one where the
	// text alone fills the block and the pad is empty.
	for n := 200; n < 520; n++ {
		texts = append(texts, strings.Repeat("x", n))
	}
	for _, text := range texts {
		b, err := chatPlaintext(text)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%chatPadTo != 0 {
			t.Errorf("chat plaintext for %d-byte text is %d bytes, not a multiple of %d", len(text), len(b), chatPadTo)
		}
	}
}
