package mp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bx is a box: 32-bit size, type, body.
func bx(typ string, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(bytes.Join(body, nil))))
	return append(append(b, typ...), bytes.Join(body, nil)...)
}

// large is a box with the 64-bit size form.
func large(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = append(b, typ...)
	b = binary.BigEndian.AppendUint64(b, uint64(16+len(body)))
	return append(b, body...)
}

func mvhd0(scale, dur uint32) []byte {
	b := make([]byte, 100) // version 0, then the rest of a real mvhd
	binary.BigEndian.PutUint32(b[12:], scale)
	binary.BigEndian.PutUint32(b[16:], dur)
	return bx("mvhd", b)
}

func mvhd1(scale uint32, dur uint64) []byte {
	b := make([]byte, 112)
	b[0] = 1
	binary.BigEndian.PutUint32(b[20:], scale)
	binary.BigEndian.PutUint64(b[24:], dur)
	return bx("mvhd", b)
}

func TestDurationSynthetic(t *testing.T) {
	ftyp := bx("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))
	mdat := bx("mdat", bytes.Repeat([]byte{0xab}, 5000))
	trak := bx("trak", bx("tkhd", make([]byte, 84)))
	for _, tc := range []struct {
		name string
		file []byte
		want float64
	}{
		{"moov first (faststart)", cat(ftyp, bx("moov", mvhd0(1000, 61500), trak), mdat), 61.5},
		{"moov after mdat", cat(ftyp, bx("free"), mdat, bx("moov", trak, mvhd0(90000, 900000))), 10},
		{"mvhd version 1", cat(ftyp, bx("moov", mvhd1(600, 600*7200))), 7200},
		{"64-bit sizes", cat(ftyp, large("mdat", make([]byte, 64)), large("moov", mvhd0(25, 50))), 2},
		{"last box to the end (size 0)", cat(ftyp, bx("moov", mvhd0(1, 3)), []byte{0, 0, 0, 0, 'm', 'd', 'a', 't', 1, 2, 3}), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Duration(bytes.NewReader(tc.file), int64(len(tc.file)))
			if err != nil || got != tc.want {
				t.Fatalf("Duration = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestDurationRefused(t *testing.T) {
	ftyp := bx("ftyp", []byte("isom"))
	many := []byte{}
	for range MaxBoxes + 1 {
		many = append(many, bx("free")...)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrNoMovie},
		{"no moov", cat(ftyp, bx("mdat", make([]byte, 10))), ErrNoMovie},
		{"moov without mvhd", cat(ftyp, bx("moov", bx("trak"))), ErrNoMovie},
		{"box size under its header", cat(ftyp, []byte{0, 0, 0, 7, 'm', 'o', 'o', 'v'}), ErrBadBox},
		{"box past the end", cat(ftyp, []byte{0, 0, 1, 0, 'm', 'o', 'o', 'v'}), ErrBadBox},
		{"child past its moov", cat(ftyp, bx("moov", []byte{0, 0, 0, 200, 'm', 'v', 'h', 'd'}), make([]byte, 300)), ErrBadBox},
		{"64-bit size over MaxInt64", cat(ftyp, []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0xff, 0, 0, 0, 0, 0, 0, 0}), ErrBadBox},
		{"truncated header", cat(ftyp, []byte{0, 0, 0}), ErrBadBox},
		{"too many boxes", cat(many, bx("moov", mvhd0(1, 1))), ErrBadBox},
		{"timescale 0", bx("moov", mvhd0(0, 10)), ErrDuration},
		{"duration 0", bx("moov", mvhd0(1000, 0)), ErrDuration},
		{"duration unknown (all ones)", bx("moov", mvhd0(1000, math.MaxUint32)), ErrDuration},
		{"duration unknown v1", bx("moov", mvhd1(1000, math.MaxUint64)), ErrDuration},
		{"mvhd version 2", bx("moov", bx("mvhd", []byte{2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})), ErrBadBox},
		{"mvhd v0 short", bx("moov", bx("mvhd", make([]byte, 12))), ErrBadBox},
		{"mvhd v1 short", bx("moov", bx("mvhd", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), ErrBadBox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Duration(bytes.NewReader(tc.file), int64(len(tc.file)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Duration = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// A size larger than the bytes there: a read error, not a panic.
	f := bx("moov", mvhd0(1, 1))
	if _, err := Duration(bytes.NewReader(f[:20]), int64(len(f))); err == nil {
		t.Fatal("a truncated file gave a duration")
	}
}

// Real files from ffmpeg (H.264 in .mp4 with moov at the end and at the
// start, and a .mov) agree with ffprobe's duration.
func TestDurationFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not found: install it (apt-get install -y ffmpeg)")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"end.mp4", nil},
		{"start.mp4", []string{"-movflags", "+faststart"}},
		{"clip.mov", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=3.2",
				"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"}, tc.args...)
			if b, err := exec.CommandContext(ctx, ffmpeg, append(args, "-y", out)...).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, b)
			}
			probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", out).Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			want, err := strconv.ParseFloat(strings.TrimSpace(string(probe)), 64)
			if err != nil {
				t.Fatalf("ffprobe said %q", probe)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			got, err := Duration(f, st.Size())
			if err != nil || math.Abs(got-want) > 0.05 {
				t.Fatalf("Duration = %v, %v; ffprobe says %v", got, err, want)
			}
		})
	}
}

func FuzzDuration(f *testing.F) {
	f.Add(cat(bx("ftyp", []byte("isom")), bx("moov", mvhd0(1000, 61500))))
	f.Add(cat(bx("mdat", make([]byte, 20)), large("moov", mvhd1(600, 1200))))
	f.Add([]byte{0, 0, 0, 0, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 'm', 'v', 'h', 'd'})
	f.Add([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 0, 0, 0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &countingReader{r: bytes.NewReader(b)}
		d, err := Duration(r, int64(len(b)))
		if err == nil && !(d > 0 && !math.IsInf(d, 0)) {
			t.Fatalf("duration %v without an error", d)
		}
		// Bounded: a header (or mvhd) read per box looked at, at most.
		if r.reads > 2*MaxBoxes+1 {
			t.Fatalf("%d reads", r.reads)
		}
	})
}

type countingReader struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
