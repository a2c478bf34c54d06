package main

import (
	"bytes"
	"strings"
	"testing"

	"cloakroom/client"
)

// TestPrintChatName: a member's chosen name (a name signal from a web page,
// issue 14) is printed before its short id, cleaned of control and bidi
// characters and bounded; without one the short id alone, as before.
func TestPrintChatName(t *testing.T) {
	const id = "396b0c1e-0000-4000-8000-000000000000"
	for _, tt := range []struct{ name, want string }{
		{"", "396b0c1e: hi\n"},
		{"Zed Tester", "Zed Tester (396b0c1e): hi\n"},
		{"Zed\u202e\x1b[31m Tester\n", "Zed[31m Tester (396b0c1e): hi\n"},
		{"\u202e\u0007", "396b0c1e: hi\n"},
		{strings.Repeat("x", 100), strings.Repeat("x", 40) + " (396b0c1e): hi\n"},
	} {
		var out, errb bytes.Buffer
		printChat(&out, &errb, client.Chat{From: id, Name: tt.name, Text: "hi"})
		if out.String() != tt.want {
			t.Errorf("name %q: printed %q, want %q", tt.name, out.String(), tt.want)
		}
	}
}
