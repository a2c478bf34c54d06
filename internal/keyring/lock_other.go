//go:build !unix

package keyring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Lock takes an exclusive lock on path by creating path+".lock" (O_EXCL),
// waiting up to 10 s for another holder; see lock_unix.go.
func Lock(path string) (unlock func(), err error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path + ".lock") }, nil
		}
		if !errors.Is(err, fs.ErrExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("keyring lock: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
