package client

import (
	"strings"
	"testing"

	"cloakroom/internal/protocol"
)

func TestSafeName(t *testing.T) {
	cases := map[string]string{
		"video.mp4":                       "video.mp4",
		"../../etc/passwd":                "_.._etc_passwd",
		"a\\b":                            "a_b",
		".bashrc":                         "bashrc",
		"evil\x1b[2Jname":                 "evil_[2Jname",
		"gpj.\u202eexe":                   "gpj._exe",
		"...":                             "unnamed",
		"ok name (1).tar.gz":              "ok name (1).tar.gz",
		"photos/2024/a.jpg":               "photos_2024_a.jpg", // a file from a folder: flattened, never a path
		"photos/.hidden":                  "photos_.hidden",
		"tab\there\nnewline":              "tab_here_newline",
		"C:evil":                          "C_evil",
		"a:b*c?d\"e<f>g|h":                "a_b_c_d_e_f_g_h",
		"CON":                             "_CON",
		"nul.txt":                         "_nul.txt",
		"Com1.tar.gz":                     "_Com1.tar.gz",
		"lpt9":                            "_lpt9",
		"COM10":                           "COM10",
		"console.log":                     "console.log",
		"trailing. . ":                    "trailing",
		strings.Repeat("é", 200) + ".mp4": strings.Repeat("é", 125) + ".mp4",
	}
	for in, want := range cases {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
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
		b, err := chatPlaintext(text, protocol.Stamp{Session: strings.Repeat("ab", 16), Seq: uint64(len(text)), Time: 1_800_000_000_123})
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%chatPadTo != 0 {
			t.Errorf("chat plaintext for %d-byte text is %d bytes, not a multiple of %d", len(text), len(b), chatPadTo)
		}
	}
}
