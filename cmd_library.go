package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	humanize "github.com/dustin/go-humanize"

	"cloakroom/client"
	"cloakroom/internal/safetext"
)

// The room library from the command line: `ls` lists the files shared in
// a room that an online member holds, `get` fetches one of them.

// libraryRule is the history rule, in a user's words (README "Room
// library").
const libraryRule = "files stay available while a member who has them is online; nothing is kept on the server"

func cmdLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("ls", stderr)
	cf.register(fs, false)
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the members online to say what they hold")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("ls: want exactly one LINK")
	}
	c, err := cf.dial(ctx, fs.Arg(0), stderr, client.Options{})
	if err != nil {
		return fmt.Errorf("ls: %w", err)
	}
	defer c.Close()
	c.Settle(ctx, 1500*time.Millisecond, *wait)
	lib := c.Library()
	if len(c.OnlineMembers()) == 0 {
		fmt.Fprintln(stderr, "no other member is online; "+libraryRule)
	}
	if len(lib) == 0 {
		fmt.Fprintln(stderr, "no files: "+libraryRule)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSIZE\tNAME\tSHARED BY\tSHARED AT\tHELD BY\tLENGTH")
	for _, e := range lib {
		length := "" // only media with a duration get the last column
		if e.Duration > 0 {
			length = "\t" + formatDuration(e.Duration)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d online%s\n", e.ID[:8], humanize.IBytes(uint64(e.Size)),
			client.SafeName(e.Name), short(e.Origin), e.Shared.Local().Format("2006-01-02 15:04"), len(e.Holders), length)
	}
	return tw.Flush()
}

// formatDuration is a media length as m:ss or h:mm:ss (rounded to the
// second, as the page shows it).
func formatDuration(secs float64) string {
	s := int64(math.Round(secs))
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// errNothingToGet: no online member holds what get asked for (exit 3).
var errNothingToGet = errors.New("nothing to get")

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("get", stderr)
	cf.register(fs, true)
	dir := fs.StringP("output", "o", ".", "directory to write the file to, or - to stream it to stdout in order as it arrives (see README: check the exit status)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a member holding the file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("get: want LINK NAME|ID")
	}
	toStdout := *dir == "-"
	if toStdout {
		// The file goes through a partial file in a private directory
		// (removed at the end, after the client closed: defers run last
		// first), so memory stays bounded whatever its size.
		tmp, err := os.MkdirTemp("", "cloakroom-get-")
		if err != nil {
			return fmt.Errorf("get: temporary directory for the stream: %w", err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	} else if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return fmt.Errorf("get: output directory %q does not exist", *dir)
	}
	want := fs.Arg(1)
	bars := newBars(stderr)
	c, err := cf.dial(ctx, fs.Arg(0), stderr, client.Options{Dir: *dir, OnProgress: bars.update, OnState: stateLine(stderr), Sequential: toStdout})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	defer c.Close()
	// A file its sender is sending us now is the one wanted: no need to
	// wait for the library to settle (a stream starts sooner).
	c.SettleUntil(ctx, 1500*time.Millisecond, *wait, func() bool {
		e, err := pickEntry(c.Library(), want)
		return err == nil && c.Receiving(e.ID)
	})
	e, err := pickEntry(c.Library(), want)
	if err != nil {
		return err
	}
	if toStdout {
		return streamGet(ctx, c, e, stdout, stderr, bars)
	}
	return getToDir(ctx, c, e, stdout, stderr, bars)
}

// getToDir fetches e (unless held) into the client's directory and prints
// its path.
func getToDir(ctx context.Context, c *client.Client, e client.LibraryEntry, stdout, stderr io.Writer, bars *bars) error {
	if e.Held {
		fmt.Fprintln(stdout, e.Path)
		return nil
	}
	if err := c.Fetch(e.ID); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	for {
		f, err := c.NextFile(ctx)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if f.ID != e.ID {
			continue
		}
		bars.finish()
		if f.Err != nil {
			return fmt.Errorf("get %s: %w", client.SafeName(f.Name), f.Err)
		}
		sayHelpers(stderr, f)
		fmt.Fprintln(stdout, f.Path)
		return nil
	}
}

// pickEntry finds the entry named want: its id, an id prefix of at least 4
// characters, or its name (the newest if several share it).
func pickEntry(lib []client.LibraryEntry, want string) (client.LibraryEntry, error) {
	for _, e := range lib {
		if e.ID == want || (len(want) >= 4 && strings.HasPrefix(e.ID, want)) {
			return e, nil
		}
	}
	for _, e := range lib { // newest first
		if e.Name == want || client.SafeName(e.Name) == want {
			if len(e.Holders) == 0 && !e.Held {
				continue
			}
			return e, nil
		}
	}
	return client.LibraryEntry{}, fmt.Errorf("get: no member online holds %q (%s): %w", safetext.Line(want), libraryRule, errNothingToGet)
}

// sayHelpers tells who a swarm-fetched file came from.
func sayHelpers(stderr io.Writer, f client.File) {
	if len(f.Helpers) > 0 {
		fmt.Fprintf(stderr, "%s: shared by %s; %d other member(s) helped\n", client.SafeName(f.Name), short(f.From), len(f.Helpers))
	}
	for _, m := range f.Dropped {
		fmt.Fprintf(stderr, "%s: member %s served chunks that did not match; it was dropped as a source\n", client.SafeName(f.Name), short(m))
	}
}
