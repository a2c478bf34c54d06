package main

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	for secs, want := range map[float64]string{0.4: "0:00", 0.5: "0:01", 3.2: "0:03", 59.6: "1:00", 61.5: "1:02", 3599.4: "59:59", 3600: "1:00:00", 36061: "10:01:01", 1e7: "2777:46:40"} {
		if got := formatDuration(secs); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", secs, got, want)
		}
	}
}

// TestCLISendDuration: `send` of an ffmpeg-made .mp4 puts its duration
// (moov/mvhd) in the manifest, and `ls` shows it as the LENGTH column of
// the entry, rounded as ffprobe's duration.
func TestCLISendDuration(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not found: install it (apt-get install -y ffmpeg)")
	}
	src := filepath.Join(t.TempDir(), "clip.mp4")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=65.4",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", src).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", src).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(probe)), 64)
	if err != nil {
		t.Fatalf("ffprobe said %q", probe)
	}
	want := formatDuration(math.Round(secs))

	_, url := startServer(t)
	link, _ := newRoom(t, url)
	dirB := t.TempDir()
	b := start(t, "recv", "--transport", "p2p", "-o", dirB, link)
	b.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	a := start(t, "send", "--transport", "p2p", link, src)
	if err := a.wait(t, 120*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitLine(t, regexp.MustCompile(regexp.QuoteMeta(filepath.Join(dirB, "clip.mp4"))), 30*time.Second)
	ls := start(t, "ls", link)
	if err := ls.wait(t, 30*time.Second); err != nil {
		t.Fatalf("ls: %v", err)
	}
	row := regexp.MustCompile(`^(?:stdout: )?[0-9a-f]{8}\s+\S+ \S+\s+clip\.mp4\s+[0-9a-f]{8}\s+\S+ \S+\s+1 online\s+` + regexp.QuoteMeta(want) + `$`)
	header := regexp.MustCompile(`^(?:stdout: )?ID\s+SIZE\s+NAME\s+SHARED BY\s+SHARED AT\s+HELD BY\s+LENGTH$`)
	var sawRow, sawHeader bool
	for _, l := range ls.output() {
		sawRow = sawRow || row.MatchString(l)
		sawHeader = sawHeader || header.MatchString(l)
	}
	if !sawRow || !sawHeader {
		t.Fatalf("ls printed %q, want a LENGTH column and a clip.mp4 row with %s (ffprobe: %v s)", ls.output(), want, secs)
	}
}
