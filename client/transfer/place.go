package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SafeName makes a sender-chosen file name safe to create and to print on
// any system the CLI runs on: no path separators, no characters Windows
// refuses (: * ? " < > |), no control or bidi-format characters, not
// hidden, no trailing dot or space, not a Windows device name (CON, NUL,
// COM1, LPT1… even with an extension), at most 255 bytes.
func SafeName(name string) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`/\:*?"<>|`, r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ".")
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return "unnamed"
	}
	if windowsDevice(name) {
		name = "_" + name
	}
	return truncateName(name, 255)
}

// windowsDevice reports whether Windows would open a device for name: the
// stem before the first dot is CON, PRN, AUX, NUL, COM0-9 or LPT0-9 (also
// with superscript digits), in any case.
func windowsDevice(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) < 4 || (stem[:3] != "COM" && stem[:3] != "LPT") {
		return false
	}
	switch stem[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}

// truncateName shortens name to at most n bytes on a rune boundary, keeping
// its extension when the extension is short.
func truncateName(name string, n int) string {
	if len(name) <= n {
		return name
	}
	ext := filepath.Ext(name)
	if len(ext) > 16 {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	cut := n - len(ext)
	for cut > 0 && !utf8.RuneStart(stem[cut]) {
		cut--
	}
	return stem[:cut] + ext
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
