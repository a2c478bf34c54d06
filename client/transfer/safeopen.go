package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// openOwn opens the partial or sidecar file at path for reading and
// writing, creating it (0600) if it does not exist, and never through a
// symlink: the download directory may be writable by others, who could
// plant a link at the predictable name to make received bytes overwrite
// another file. A symlink, a special file or a file with other hard links
// found there is removed and the name created afresh; if another program
// races to put something there again, openOwn fails.
func openOwn(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	f, err = os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
	if err == nil {
		if ownRegular(f) {
			return f, nil
		}
		f.Close()
	} else if !isSymlinkErr(err) {
		return nil, err
	}
	// Not ours to write through: take the name back.
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("%s is not a regular file and cannot be removed: %w", path, err)
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: replaced while being opened: %w", path, err)
	}
	return f, nil
}
