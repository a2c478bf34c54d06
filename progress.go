package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"cloakroom/client"
)

// bars shows one progress bar per transfer on the terminal (stderr): bytes,
// speed and the path the transfer takes.
type bars struct {
	w    io.Writer
	mu   sync.Mutex
	key  string
	path string
	bar  *progressbar.ProgressBar
}

func newBars(w io.Writer) *bars { return &bars{w: w} }

// update is the client's OnProgress callback.
func (b *bars) update(p client.Progress) {
	if p.Sending && p.Peer != "" {
		return // per-recipient acks; the upload bar shows the send
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := p.File + p.Peer
	if b.bar == nil || b.key != key || b.path != p.Path {
		b.finishLocked()
		verb := "receiving"
		if p.Sending {
			verb = "sending"
		}
		b.key, b.path = key, p.Path
		b.bar = progressbar.NewOptions64(max(p.Total, 1),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(fmt.Sprintf("%s %s via %s", verb, p.Name, p.Path)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	_ = b.bar.Set64(p.Bytes)
}

// finish ends the current bar, if any, with a newline.
func (b *bars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *bars) finishLocked() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
		b.bar = nil
	}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
