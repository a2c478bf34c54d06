package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
)

// TestCLILibraryLateJoiner: A sends a file to B (direct) and exits; then C
// lists the room's library with `ls`, joins with `recv` and gets the file
// from B, A offline throughout; `get` fetches it by name, and exits 3 for
// a name no member online holds. Size: CLOAKROOM_LIBRARY_SIZE (default
// 256 MiB, the figure).
func TestCLILibraryLateJoiner(t *testing.T) {
	size := int64(256 << 20)
	if s := os.Getenv("CLOAKROOM_LIBRARY_SIZE"); s != "" {
		n, err := humanize.ParseBytes(s)
		if err != nil {
			t.Fatalf("CLOAKROOM_LIBRARY_SIZE=%q: %v", s, err)
		}
		size = int64(n)
	}
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)

	dirB := t.TempDir()
	b := start(t, "recv", "--transport", "p2p", "-o", dirB, link)
	b.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	a := start(t, "send", "--transport", "p2p", link, src)
	if err := a.wait(t, 120*time.Second+time.Duration(size>>20)*time.Second/2); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitLine(t, regexp.MustCompile(regexp.QuoteMeta(filepath.Join(dirB, "random.bin"))), 30*time.Second)
	var aID string
	for _, l := range a.output() {
		if m := deliveredRe.FindStringSubmatch(l); m != nil && m[1] != "direct" {
			t.Fatalf("A's copy to B went %q, want direct", m[1])
		}
	}
	// Who A was, as B's library shows it (A is gone: ls names the origin).
	ls := start(t, "ls", link)
	if err := ls.wait(t, 30*time.Second); err != nil {
		t.Fatalf("ls: %v", err)
	}
	row := regexp.MustCompile(`^([0-9a-f]{8})\s+256 MiB\s+random\.bin\s+([0-9a-f]{8})\s+\S+ \S+\s+1 online$`)
	if size != 256<<20 {
		row = regexp.MustCompile(`^([0-9a-f]{8})\s+\S+ \S+\s+random\.bin\s+([0-9a-f]{8})\s+\S+ \S+\s+1 online$`)
	}
	for _, l := range ls.output() {
		if m := row.FindStringSubmatch(strings.TrimPrefix(l, "stdout: ")); m != nil {
			aID = m[2]
		}
	}
	if aID == "" {
		t.Fatalf("ls printed %q, want a row for random.bin held by 1 online member", ls.output())
	}

	dirC := t.TempDir()
	began := time.Now()
	c := start(t, "recv", "--transport", "p2p", "-o", dirC, "--count", "1", link)
	if err := c.wait(t, 60*time.Second+time.Duration(size>>20)*time.Second/2); err != nil {
		t.Fatalf("C's recv: %v", err)
	}
	if got := fileSHA(t, filepath.Join(dirC, "random.bin")); got != want {
		t.Fatalf("C got SHA-256 %s, want %s", got, want)
	}
	c.waitLine(t, regexp.MustCompile(`random\.bin: shared by `+aID+`; 1 other member\(s\) helped`), time.Second)
	t.Logf("late joiner got %s from B (A gone) in %s", humanize.IBytes(uint64(size)), time.Since(began).Round(time.Millisecond))

	dirD := t.TempDir()
	get := start(t, "get", "-o", dirD, link, "random.bin")
	if err := get.wait(t, 60*time.Second+time.Duration(size>>20)*time.Second/2); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got := fileSHA(t, filepath.Join(dirD, "random.bin")); got != want {
		t.Fatalf("get: SHA-256 %s, want %s", got, want)
	}
	none := start(t, "get", "--wait", "3s", "-o", dirD, link, "nosuch.bin")
	err := none.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("get of a file nobody holds: %v, want exit status 3", err)
	}
	none.waitLine(t, regexp.MustCompile(`no member online holds "nosuch\.bin"`), time.Second)
}
