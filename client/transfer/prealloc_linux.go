package transfer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate allocates the file's blocks in [off, off+n): on ext4 this
// makes the chunk writes that follow several times cheaper. Errors are
// ignored (some file systems cannot do it; writes still work).
func preallocate(f *os.File, off, n int64) {
	if n > 0 {
		_ = unix.Fallocate(int(f.Fd()), 0, off, n)
	}
}

// spaceMargin is left free on the disk after a file that fits.
const spaceMargin = 64 << 20

// checkSpace refuses a file that needs more than the free space of dir's
// file system (less a margin), so a manifest announcing a huge file is
// refused with a clear message instead of filling the disk.
func checkSpace(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil // cannot tell: writes will say
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need+spaceMargin > free {
		return fmt.Errorf("%w in %s: needs %d more bytes, %d free", ErrNoSpace, dir, need, free)
	}
	return nil
}
