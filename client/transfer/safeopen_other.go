//go:build !unix

package transfer

import "os"

// Without O_NOFOLLOW, openOwn relies on the regular-file check (Windows
// creates symlinks only with privileges).
const oNoFollow = 0

func isSymlinkErr(error) bool { return false }

func ownRegular(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	// os.Stat of the name would follow a link; Lstat tells it apart.
	lst, err := os.Lstat(f.Name())
	return err == nil && lst.Mode().IsRegular()
}
