package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxLinkFile bounds what is read of a file named by @FILE (a link is
// about a hundred bytes; anything longer is not one).
const maxLinkFile = 4096

// resolveLink returns the room link (or mini code) a LINK argument stands
// for. A link on the command line is visible to every user of the machine
// (ps, /proc/PID/cmdline) for as long as the command runs, and it is the
// room's secret; so LINK may instead be
//
//	@FILE     the first non-empty line of FILE (warned about when other
//	          users may read it)
//	env:NAME  the environment variable NAME (e.g. env:CLOAKROOM_LINK)
//	key:NAME  the room kept under NAME in the keyring kf names
//	          (cmd_keyring.go; its passphrase may be asked on the terminal)
//
// Errors never quote the secret.
func resolveLink(ctx context.Context, arg string, kf *keyringFlags, stderr io.Writer) (string, error) {
	switch {
	case strings.HasPrefix(arg, "key:"):
		return linkFromKeyring(ctx, arg[len("key:"):], kf, stderr)
	case strings.HasPrefix(arg, "@"):
		return linkFromFile(arg[1:], stderr)
	case strings.HasPrefix(arg, "env:"):
		name := arg[len("env:"):]
		v := strings.TrimSpace(os.Getenv(name))
		if name == "" || v == "" {
			return "", usagef("LINK %s: the environment variable %q is not set or empty", arg, name)
		}
		return v, nil
	}
	return arg, nil
}

func linkFromFile(path string, stderr io.Writer) (string, error) {
	if path == "" {
		return "", usagef("LINK @FILE: no file named")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("room link file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "warning: %s may be read by other users (mode %s); the room link is the room's secret: chmod 600 it\n", path, st.Mode().Perm())
	}
	sc := bufio.NewScanner(io.LimitReader(f, maxLinkFile))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("room link file %s: %w", path, err)
	}
	return "", fmt.Errorf("room link file %s: no link in its first %d bytes", path, maxLinkFile)
}
