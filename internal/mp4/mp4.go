// Package mp4 reads the duration of an ISO base media file (.mp4, .m4v,
// .mov) from its movie header box (moov/mvhd), reading box headers and the
// mvhd fields only: never the media data, wherever moov lies (at the start
// of the file or after mdat). The files are whatever a user picked, so the
// walker is bounded: every step moves forward by at least one header, at
// most MaxBoxes boxes are looked at, and nothing is allocated by size.
// Only the standard library is used.
package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// MaxBoxes bounds the boxes looked at, top level and inside moov together.
const MaxBoxes = 4096

// Errors.
var (
	ErrNoMovie  = errors.New("mp4: no moov/mvhd box")
	ErrBadBox   = errors.New("mp4: malformed box")
	ErrDuration = errors.New("mp4: no usable duration")
)

// Duration returns the movie's duration in seconds from moov/mvhd of the
// file r of size bytes: finite and > 0, or an error.
func Duration(r io.ReaderAt, size int64) (float64, error) {
	w := walker{r: r}
	moov, err := w.find(0, size, "moov")
	if err != nil {
		return 0, err
	}
	mvhd, err := w.find(moov.body, moov.end, "mvhd")
	if err != nil {
		return 0, err
	}
	return readMVHD(r, mvhd)
}

// box is a box's body range [body, end) in the file.
type box struct{ body, end int64 }

type walker struct {
	r     io.ReaderAt
	boxes int
}

// find returns the first box of type typ among the boxes in [off, end).
func (w *walker) find(off, end int64, typ string) (box, error) {
	var h [16]byte
	for off < end {
		if w.boxes++; w.boxes > MaxBoxes {
			return box{}, fmt.Errorf("%w: over %d boxes", ErrBadBox, MaxBoxes)
		}
		if end-off < 8 {
			return box{}, fmt.Errorf("%w: %d bytes left at %d, less than a box header", ErrBadBox, end-off, off)
		}
		if err := readAt(w.r, h[:8], off); err != nil {
			return box{}, err
		}
		n := int64(binary.BigEndian.Uint32(h[:4]))
		kind := string(h[4:8])
		hdr := int64(8)
		switch n {
		case 0: // to the end of the enclosing range
			n = end - off
		case 1: // 64-bit size follows
			if end-off < 16 {
				return box{}, fmt.Errorf("%w: truncated large box at %d", ErrBadBox, off)
			}
			if err := readAt(w.r, h[8:16], off+8); err != nil {
				return box{}, err
			}
			large := binary.BigEndian.Uint64(h[8:16])
			if large > math.MaxInt64 {
				return box{}, fmt.Errorf("%w: box size %d at %d", ErrBadBox, large, off)
			}
			n, hdr = int64(large), 16
		}
		if n < hdr || n > end-off {
			return box{}, fmt.Errorf("%w: %q of %d bytes at %d does not fit [%d, %d)", ErrBadBox, kind, n, off, off, end)
		}
		if kind == typ {
			return box{body: off + hdr, end: off + n}, nil
		}
		off += n
	}
	return box{}, ErrNoMovie
}

// readMVHD reads timescale and duration (version 0: 32-bit, 1: 64-bit).
func readMVHD(r io.ReaderAt, b box) (float64, error) {
	var f [32]byte
	n := min(b.end-b.body, int64(len(f)))
	if n < 4 {
		return 0, fmt.Errorf("%w: mvhd of %d bytes", ErrBadBox, n)
	}
	if err := readAt(r, f[:n], b.body); err != nil {
		return 0, err
	}
	var scale uint32
	var dur uint64
	switch f[0] {
	case 0: // version, flags(3), creation(4), modification(4), timescale(4), duration(4)
		if n < 20 {
			return 0, fmt.Errorf("%w: mvhd v0 of %d bytes", ErrBadBox, n)
		}
		scale = binary.BigEndian.Uint32(f[12:16])
		dur = uint64(binary.BigEndian.Uint32(f[16:20]))
		if dur == math.MaxUint32 {
			return 0, fmt.Errorf("%w: duration unknown", ErrDuration)
		}
	case 1: // version, flags(3), creation(8), modification(8), timescale(4), duration(8)
		if n < 32 {
			return 0, fmt.Errorf("%w: mvhd v1 of %d bytes", ErrBadBox, n)
		}
		scale = binary.BigEndian.Uint32(f[20:24])
		dur = binary.BigEndian.Uint64(f[24:32])
		if dur == math.MaxUint64 {
			return 0, fmt.Errorf("%w: duration unknown", ErrDuration)
		}
	default:
		return 0, fmt.Errorf("%w: mvhd version %d", ErrBadBox, f[0])
	}
	if scale == 0 || dur == 0 {
		return 0, fmt.Errorf("%w: duration %d at timescale %d", ErrDuration, dur, scale)
	}
	return float64(dur) / float64(scale), nil
}

// readAt fills p from off (io.EOF with every byte read is no error).
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("mp4: read at %d: %w", off, err)
}
