package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestResolveLink(t *testing.T) {
	dir := t.TempDir()
	const link = "http://127.0.0.1:8080/#s49Vux9hnj2nGryvm1BGfQ"
	private := filepath.Join(dir, "room")
	if err := os.WriteFile(private, []byte("\n  "+link+"  \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte(link+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o644) // whatever the umask
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROOM_LINK_TEST", " "+link+"\n")
	t.Setenv("ROOM_LINK_EMPTY", "")
	for _, tc := range []struct {
		arg, want, warn, err string
	}{
		{arg: link, want: link},
		{arg: "@" + private, want: link},
		{arg: "@" + shared, want: link, warn: "may be read by other users"},
		{arg: "env:ROOM_LINK_TEST", want: link},
		{arg: "@" + empty, err: "no link"},
		{arg: "@" + filepath.Join(dir, "missing"), err: "no such file"},
		{arg: "@", err: "no file named"},
		{arg: "env:ROOM_LINK_EMPTY", err: "not set or empty"},
		{arg: "env:", err: "not set or empty"},
	} {
		var stderr bytes.Buffer
		got, err := resolveLink(tc.arg, &stderr)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolveLink(%q) = %q, %v; want an error with %q", tc.arg, got, err, tc.err)
			} else if strings.Contains(err.Error(), "s49Vux") {
				t.Errorf("resolveLink(%q): the error quotes the secret: %v", tc.arg, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("resolveLink(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		case tc.warn == "" && stderr.Len() > 0, tc.warn != "" && !strings.Contains(stderr.String(), tc.warn):
			t.Errorf("resolveLink(%q) warned %q, want %q", tc.arg, stderr.String(), tc.warn)
		}
	}
}

// TestCLILinkNotInArgs: a member joins with the link read from a file or
// from the environment, so the room's secret is never in its command line.
func TestCLILinkNotInArgs(t *testing.T) {
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	file := filepath.Join(t.TempDir(), "room")
	if err := os.WriteFile(file, []byte(link+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := start(t, "recv", "-o", dir, "--count", "1", "@"+file)
	r.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	src, want := randomFile(t, t.TempDir(), 1<<20)
	s := startEnv(t, []string{"CLOAKROOM_LINK=" + link}, "send", "env:CLOAKROOM_LINK", src)
	if err := s.wait(t, time.Minute); err != nil {
		t.Fatalf("send with env:CLOAKROOM_LINK: %v", err)
	}
	if err := r.wait(t, time.Minute); err != nil {
		t.Fatalf("recv with @FILE: %v", err)
	}
	for _, p := range []*proc{r, s} {
		if strings.Contains(strings.Join(p.cmd.Args, " "), "#") {
			t.Errorf("the command line holds the link: %v", p.cmd.Args)
		}
	}
	if sha := fileSHA(t, filepath.Join(dir, "random.bin")); sha != want {
		t.Fatalf("received SHA-256 %s, want %s", sha, want)
	}
}

// startEnv starts cloakroom with extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	p, _ := startCmd(t, cmd, false)
	return p
}
