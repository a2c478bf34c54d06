package transfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"cloakroom/internal/crypto"
)

// Resume (docs/DECISIONS.md "Resume"): a receiver names its partial file by
// the content it will hold (SHA-256 and size from the manifest), not by the
// announcement, and keeps beside it a bitmap of the chunks already written.
// A new announcement of the same content — the sender's next round after a
// server restart, a restarted sender, or a restarted receiver — adopts that
// partial file, and the receiver tells the sender (a sealed "have" signal)
// which chunks it can skip.

// haveMagic starts a bitmap sidecar file.
const haveMagic = "CRHAVE1\n"

// haveHeaderLen is magic ‖ size u64 ‖ chunk size u32 ‖ chunks u32.
const haveHeaderLen = len(haveMagic) + 8 + 4 + 4

// partPaths returns the partial file and its bitmap sidecar for a manifest.
// PartPath is where a reception of man keeps its partial file in dir.
func PartPath(dir string, man *crypto.Manifest) string {
	part, _ := partPaths(dir, man)
	return part
}

func partPaths(dir string, man *crypto.Manifest) (part, side string) {
	base := fmt.Sprintf(".cloakroom-%s-%d", man.SHA256, man.Size)
	return filepath.Join(dir, base+".part"), filepath.Join(dir, base+".have")
}

// haveMap is the set of chunks written to the partial file, mirrored to the
// sidecar (in a reception only the Receiver's Run loop touches it after
// creation; a Schedule's have maps, without sidecar, are under its lock).
type haveMap struct {
	bits   []byte
	side   *os.File
	dirtyL int // byte range of bits not yet written to side: [dirtyL, dirtyH)
	dirtyH int
}

func newHaveMap(chunks uint32) *haveMap {
	return &haveMap{bits: make([]byte, (int(chunks)+7)/8), dirtyL: -1}
}

func (h *haveMap) has(i uint32) bool { return h.bits[i/8]&(1<<(i%8)) != 0 }

func (h *haveMap) set(i uint32) {
	b := int(i / 8)
	h.bits[b] |= 1 << (i % 8)
	if h.dirtyL < 0 || b < h.dirtyL {
		h.dirtyL = b
	}
	if b+1 > h.dirtyH {
		h.dirtyH = b + 1
	}
}

// flush writes the changed part of the bitmap to the sidecar. The partial
// file's chunks were written before their bits were set, so the sidecar never
// claims a chunk the partial file does not hold (for a process that dies; a
// machine that loses power may lose both, see DECISIONS.md).
func (h *haveMap) flush() error {
	if h.side == nil || h.dirtyL < 0 {
		return nil
	}
	_, err := h.side.WriteAt(h.bits[h.dirtyL:h.dirtyH], int64(haveHeaderLen+h.dirtyL))
	h.dirtyL, h.dirtyH = -1, 0
	if err != nil {
		return fmt.Errorf("write chunk bitmap: %w", err)
	}
	return nil
}

// ranges lists the chunks held as [lo, hi) ranges.
func (h *haveMap) ranges(chunks uint32) [][2]uint32 { return runs(chunks, h.has, math.MaxInt) }

// runs lists the indices below n for which has is true as [lo, hi)
// ranges, at most max of them (a prefix of the truth).
func runs(n uint32, has func(uint32) bool, max int) [][2]uint32 {
	var out [][2]uint32
	for i := uint32(0); i < n && len(out) < max; {
		if !has(i) {
			i++
			continue
		}
		j := i
		for j < n && has(j) {
			j++
		}
		out = append(out, [2]uint32{i, j})
		i = j
	}
	return out
}

func haveHeader(man *crypto.Manifest) []byte {
	b := make([]byte, 0, haveHeaderLen)
	b = append(b, haveMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(man.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(man.ChunkSize))
	return binary.BigEndian.AppendUint32(b, man.Chunks)
}

// errNoSidecar means there is no usable bitmap: the partial file starts over.
var errNoSidecar = errors.New("no usable chunk bitmap")

// parseHave checks a sidecar's content against the manifest and returns its
// bitmap. The sidecar is our own file, but a crash or another program may
// have left anything there.
func parseHave(data []byte, man *crypto.Manifest) ([]byte, error) {
	hdr := haveHeader(man)
	n := (int(man.Chunks) + 7) / 8
	if len(data) != len(hdr)+n || string(data[:len(hdr)]) != string(hdr) {
		return nil, errNoSidecar
	}
	bits := data[len(hdr):]
	if r := man.Chunks % 8; r != 0 && bits[n-1]>>r != 0 {
		return nil, errNoSidecar // bits past the last chunk
	}
	return bits, nil
}

// openPartial opens (or creates) the partial file for man and its sidecar.
// An existing pair that matches is kept: its bitmap says which chunks are
// already there. Anything else starts from an empty file.
func openPartial(dir string, man *crypto.Manifest) (f *os.File, part string, hm *haveMap, err error) {
	part, sidePath := partPaths(dir, man)
	hm = newHaveMap(man.Chunks)
	f, err = openOwn(part)
	if err != nil {
		return nil, "", nil, fmt.Errorf("partial file: %w", err)
	}
	side, err := openOwn(sidePath)
	if err != nil {
		f.Close()
		return nil, "", nil, fmt.Errorf("chunk bitmap: %w", err)
	}
	hm.side = side
	old, rerr := io.ReadAll(io.LimitReader(side, int64(haveHeaderLen+len(hm.bits)+1)))
	st, serr := f.Stat()
	if bits, perr := parseHave(old, man); rerr == nil && serr == nil && perr == nil && st.Size() <= man.Size {
		copy(hm.bits, bits)
		return f, part, hm, nil
	}
	// Start over: an empty bitmap first, then an empty partial file.
	if err := side.Truncate(0); err == nil {
		_, err = side.WriteAt(append(haveHeader(man), hm.bits...), 0)
	}
	if err == nil {
		err = f.Truncate(0)
	}
	if err != nil {
		f.Close()
		side.Close()
		return nil, "", nil, fmt.Errorf("reset partial file: %w", err)
	}
	return f, part, hm, nil
}

// removePartial deletes a partial file and its sidecar.
func removePartial(part string) {
	os.Remove(part)
	os.Remove(sidecarOf(part))
}

func sidecarOf(part string) string {
	return part[:len(part)-len(".part")] + ".have"
}
