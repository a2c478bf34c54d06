package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// SafeName makes a sender-chosen file name safe to create and to print: no
// path separators, no control or bidi-format characters, not hidden.
func SafeName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "unnamed"
	}
	return name
}

// placeFile renames the finished partial file to name inside dir, adding
// " (1)", " (2)"… before the extension rather than overwriting a file.
func placeFile(dir, name, part string) (string, error) {
	name = SafeName(name)
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		cand := name
		if i > 0 {
			cand = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
		path := filepath.Join(dir, cand)
		if err := os.Link(part, path); err == nil {
			os.Remove(part)
			return path, nil
		} else if !os.IsExist(err) {
			// No hard links here (FAT, some network file systems): rename,
			// after checking the name is free.
			if _, serr := os.Lstat(path); os.IsNotExist(serr) {
				if rerr := os.Rename(part, path); rerr != nil {
					return "", fmt.Errorf("place %s: %w", path, rerr)
				}
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("place %q: too many files with that name", name)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func truncateReason(s string) string {
	if len(s) > 200 {
		return strings.ToValidUTF8(s[:200], "")
	}
	return s
}
