package main

// `cloakroom get LINK NAME -o -`: the file streamed to stdout, in order, as
// it arrives (`| mpv -`). The fetch runs lowest chunk first into a partial
// file in a private temporary directory (cmdGet makes and removes it); a
// writer goroutine copies the file's contiguous prefix to stdout as chunks
// are written (client.Stream wakes it), and checks the SHA-256 of all it
// wrote at the end. Everything else goes to stderr.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	humanize "github.com/dustin/go-humanize"

	"cloakroom/client"
)

// streamBuf is how much the writer copies to stdout at a time (the only
// plaintext it holds in memory).
const streamBuf = 1 << 20

// writerGrace bounds the wait for the writer once the stream is over for
// another reason (interrupted, the reception failed): a write blocked on a
// consumer that stopped reading cannot be cancelled, and the process exits
// without it.
const writerGrace = 2 * time.Second

// pumped is what the writer did: bytes written, and why it stopped (a
// read error — the reception failed, the SHA-256 did not match, ctx ended —
// or a write error: stdout closed).
type pumped struct {
	n          int64
	rerr, werr error
}

// pump copies src to dst until src's end (io.EOF: every byte written and
// verified) or an error.
func pump(dst io.Writer, src io.Reader) (r pumped) {
	buf := make([]byte, streamBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			r.n += int64(w)
			if werr != nil {
				r.werr = werr
				return r
			}
		}
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			r.rerr = err
			return r
		}
	}
}

type verdict struct {
	f   client.File
	err error
}

// awaitFile waits for the reception of file id to end (received: checked
// against the manifest's SHA-256, or failed).
func awaitFile(ctx context.Context, c *client.Client, id string) verdict {
	for {
		f, err := c.NextFile(ctx)
		if err != nil || f.ID == id {
			return verdict{f, err}
		}
	}
}

// streamGet fetches e (unless held) and writes it to stdout as it arrives.
// Exit status: 0 once every byte is written and the whole file matched its
// SHA-256; otherwise an error, even though bytes were written already (a
// consumer of the stream must check the status).
func streamGet(ctx context.Context, c *client.Client, e client.LibraryEntry, stdout, stderr io.Writer, bars *bars) error {
	name := client.SafeName(e.Name)
	// A closed stdout must be a write error (EPIPE) that is reported, not
	// a SIGPIPE that ends the process without a word.
	signal.Ignore(syscall.SIGPIPE)
	if !e.Held {
		if err := c.Fetch(e.ID); err != nil {
			return fmt.Errorf("get: %w", err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.OpenStream(sctx, e.ID)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	bars.println(fmt.Sprintf("%s (%s): streaming to stdout, lowest chunk first", name, humanize.IBytes(uint64(e.Size))))
	began := time.Now()
	pr, vd := runStream(sctx, cancel, c, e, st, stdout)
	if pr != nil {
		st.Close() // the writer is done with it
	}
	if pr == nil || pr.werr != nil || pr.rerr != nil || vd.err != nil || vd.f.Err != nil {
		// Nobody reads any more, the user interrupted, or the reception
		// failed: the sources are told to stop (if the fetch still runs).
		cctx, ccancel := context.WithTimeout(context.Background(), writerGrace)
		c.CancelFetch(cctx, e.ID)
		ccancel()
		bars.abandon()
		return streamError(name, e.Size, pr, vd, ctx.Err() != nil)
	}
	bars.finish()
	if !e.Held {
		sayHelpers(stderr, vd.f)
	}
	fmt.Fprintf(stderr, "%s: %d bytes streamed to stdout in %s, SHA-256 verified\n", name, pr.n, time.Since(began).Round(time.Millisecond))
	return nil
}

// runStream runs the writer (st to stdout) and the wait for the receiver's
// verdict, and returns what both came to. Either failing cancels ctx (by
// cancel), which stops the other; so does ctx's parent (interrupted). A
// writer still blocked on stdout writerGrace after that is left behind:
// pr is nil.
func runStream(ctx context.Context, cancel func(), c *client.Client, e client.LibraryEntry, st *client.Stream, stdout io.Writer) (pr *pumped, vd *verdict) {
	copied := make(chan pumped, 1)
	go func() { copied <- pump(stdout, st) }()
	verdicts := make(chan verdict, 1)
	if e.Held {
		verdicts <- verdict{}
	} else {
		go func() { verdicts <- awaitFile(ctx, c, e.ID) }()
	}
	done := ctx.Done()
	var grace <-chan time.Time
	for pr == nil || vd == nil {
		select {
		case r := <-copied:
			pr = &r
			if r.werr != nil || r.rerr != nil {
				cancel()
			}
		case v := <-verdicts:
			vd = &v
			if v.err != nil || v.f.Err != nil {
				cancel() // the writer stops waiting for chunks
			}
		case <-done:
			done, grace = nil, time.After(writerGrace)
		case <-grace:
			if pr == nil {
				if vd == nil {
					<-verdicts // ends with ctx
				}
				return nil, &verdict{err: ctx.Err()}
			}
			grace = nil
		}
	}
	return pr, vd
}

// streamError says why a stream ended short.
func streamError(name string, size int64, pr *pumped, vd *verdict, interrupted bool) error {
	switch {
	case pr == nil:
		return fmt.Errorf("get %s: interrupted; writing to stdout was blocked (the reader stopped reading)", name)
	case pr.werr != nil && errors.Is(pr.werr, syscall.EPIPE):
		return fmt.Errorf("get %s: stdout was closed after %d of %d bytes (the reader went away); fetch cancelled", name, pr.n, size)
	case pr.werr != nil:
		return fmt.Errorf("get %s: writing to stdout after %d of %d bytes: %w; fetch cancelled", name, pr.n, size, pr.werr)
	case interrupted:
		return fmt.Errorf("get %s: interrupted after %d of %d bytes written to stdout", name, pr.n, size)
	case vd.f.Err != nil:
		return fmt.Errorf("get %s: %w (the %d bytes already written to stdout are not to be trusted)", name, vd.f.Err, pr.n)
	case pr.rerr != nil:
		return fmt.Errorf("get %s: %w (after %d bytes written to stdout; they are not to be trusted)", name, pr.rerr, pr.n)
	}
	return fmt.Errorf("get %s: %w", name, vd.err)
}
