//go:build unix

package transfer

import (
	"errors"
	"os"
	"syscall"
)

// oNoFollow makes open fail (ELOOP) on a symlink in the last component.
const oNoFollow = syscall.O_NOFOLLOW

func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }

// ownRegular reports whether f is a regular file with no other hard link.
func ownRegular(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return !ok || sys.Nlink == 1
}
