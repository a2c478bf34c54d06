package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves the file's blocks up front: on ext4 this makes the
// chunk writes that follow several times cheaper, and a full disk is found
// before the transfer rather than in the middle. Errors are ignored (some
// file systems cannot do it; writes still work).
func preallocate(f *os.File, size int64) {
	if size > 0 {
		_ = unix.Fallocate(int(f.Fd()), 0, 0, size)
	}
}
