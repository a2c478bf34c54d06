package main

// Command-line plumbing shared by every subcommand: flag sets, usage
// errors, the logger and the flag types that parse a value once, when the
// flag is set.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"

	"github.com/dustin/go-humanize"
	flag "github.com/spf13/pflag"

	"cloakroom/internal/protocol"
)

// usageError marks bad command-line use (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// newLogger is the text logger of --log-level on w.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// byteSize is a flag.Value for a size in bytes written like 64MiB, 1GB or
// 1048576 (go-humanize), stored in an int64 of the caller's; a positive
// one refuses 0.
type byteSize struct {
	n        *int64
	positive bool
}

// newByteSize points a byteSize that accepts 0 at p, set to def.
func newByteSize(p *int64, def int64) byteSize {
	*p = def
	return byteSize{n: p}
}

// newPositiveSize points a byteSize that refuses 0 at p, set to def.
func newPositiveSize(p *int64, def int64) byteSize {
	*p = def
	return byteSize{n: p, positive: true}
}

func (b byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("want a size like 64MiB")
	}
	if n == 0 && b.positive {
		return fmt.Errorf("want a size above 0, like 64MiB")
	}
	if n > math.MaxInt64 {
		return fmt.Errorf("size over %d bytes", int64(math.MaxInt64))
	}
	*b.n = int64(n)
	return nil
}

// String writes whole binary units exactly (64MiB, 1GiB), else rounded.
func (b byteSize) String() string {
	if b.n == nil || *b.n == 0 {
		return "0"
	}
	n := *b.n
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 60, "EiB"}, {1 << 50, "PiB"}, {1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return strings.ReplaceAll(humanize.IBytes(uint64(n)), " ", "")
}

func (b byteSize) Type() string { return "size" }

// transportFlag is a flag.Value for --transport (protocol.ParseTransport).
type transportFlag struct{ t *protocol.Transport }

// newTransportFlag points a transportFlag at p, set to def.
func newTransportFlag(p *protocol.Transport, def protocol.Transport) transportFlag {
	*p = def
	return transportFlag{p}
}

func (f transportFlag) Set(s string) error {
	t, err := protocol.ParseTransport(s)
	if err != nil {
		return err
	}
	*f.t = t
	return nil
}

func (f transportFlag) String() string {
	if f.t == nil {
		return ""
	}
	return string(*f.t)
}

func (f transportFlag) Type() string { return "transport" }
