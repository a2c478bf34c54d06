package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"cloakroom/client"
)

// bars shows one progress bar per file on the terminal (stderr): bytes,
// speed, and the path each recipient's copy takes (direct, TURN, relay).
// With several recipients the bar follows the slowest one.
type bars struct {
	w     io.Writer
	mu    sync.Mutex
	key   string
	desc  string
	peers map[string]peerProgress
	bar   *progressbar.ProgressBar
}

type peerProgress struct {
	bytes int64
	path  string
}

func newBars(w io.Writer) *bars { return &bars{w: w} }

// update is the client's OnProgress callback.
func (b *bars) update(p client.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := p.File
	if b.bar == nil || b.key != key {
		b.finishLocked()
		b.key, b.peers = key, map[string]peerProgress{}
	}
	if p.Sending && p.Peer != "" {
		delete(b.peers, "") // recipients report now; the upload line is done
	}
	b.peers[p.Peer] = peerProgress{bytes: p.Bytes, path: string(p.Path)}
	least, paths := p.Bytes, map[string]bool{}
	for _, pp := range b.peers {
		least = min(least, pp.bytes)
		paths[pp.path] = true
	}
	desc := describe(p, paths)
	if b.bar == nil || desc != b.desc {
		b.finishLocked()
		b.desc = desc
		b.bar = progressbar.NewOptions64(max(p.Total, 1),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
		)
	}
	_ = b.bar.Set64(least)
}

func describe(p client.Progress, paths map[string]bool) string {
	verb := "receiving"
	if p.Sending {
		verb = "sending"
	}
	list := make([]string, 0, len(paths))
	for path := range paths {
		list = append(list, path)
	}
	slices.Sort(list)
	return fmt.Sprintf("%s %s via %s", verb, client.SafeName(p.Name), strings.Join(list, "+"))
}

// println ends the current bar, if any, and prints a line below it.
func (b *bars) println(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
	fmt.Fprintln(b.w, line)
}

// finish ends the current bar, if any, with a newline.
func (b *bars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

// abandon ends the current bar, if any, where it stands (a transfer that
// stopped short), with a newline.
func (b *bars) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		fmt.Fprintln(b.w)
		b.bar, b.desc = nil, ""
	}
}

func (b *bars) finishLocked() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
		b.bar, b.desc = nil, ""
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
