// Package transfer is the file-transfer engine of the Go client: manifests
// (NewManifest, Renew), sealing a file into chunk frames (SealChunks), the
// schedule of a relay upload (Schedule: which chunks, how far ahead), and
// receiving files chunk by chunk with resume (Receiver). It knows nothing of
// WebSockets or WebRTC: sealed chunks reach a Receiver from a ChunkSource
// (the relay, or one peer session) and their verified plaintext goes to a
// ChunkSink (by default a partial file on disk, named by its content, whose
// chunk bitmap lets a later announcement or a restarted client resume it).
package transfer

import (
	"errors"

	"cloakroom/internal/protocol"
)

// Errors of the transfer engine; test with errors.Is.
var (
	ErrIntegrity  = errors.New("file failed its integrity check")
	ErrSourceGone = errors.New("chunk source gone")
	// ErrSameContent refuses another member's announcement of content a
	// reception from an online member is receiving.
	ErrSameContent = errors.New("same content already being received from another member")
	// ErrNoSpace refuses a file the download directory has no room for.
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrCancelled ends a reception its sender cancelled (an xfer cancel signal).
	ErrCancelled = errors.New("cancelled by the sender")
)

// File is a received file (or a failed reception, with Err set).
type File struct {
	ID     string
	Name   string // name given by the sender
	Path   string // where it was written
	Type   string
	Size   int64
	SHA256 string
	From   string
	Err    error
	// Resumed is how many bytes were already held when the reception began
	// (a partial file from an earlier announcement or an earlier run).
	Resumed int64
	// Helpers are the members other than the origin that served chunks of
	// it (a swarm fetch); Dropped those dropped as sources for serving a
	// chunk that did not match the origin's hash.
	Helpers []string
	Dropped []string
	// Links is how many peer sessions delivered chunks of it (several
	// with one member: stripes, docs/PROTOCOL.md).
	Links int
}

// Progress reports a transfer's advance.
type Progress struct {
	File    string
	Name    string
	Peer    string // the other member; "" for a send's overall upload
	Sending bool
	Bytes   int64
	Total   int64
	Path    protocol.Path // the path the chunks take
	Done    bool
}

// ChunkSource is where a reception's sealed chunks come from: the relay, or
// one peer session. A reception switches source when the same file arrives
// another way; chunks from any source verify the same way.
type ChunkSource interface {
	// Path names the path its chunks take.
	Path() protocol.Path
	// Gone is closed once the source can deliver nothing more (nil: never).
	Gone() <-chan struct{}
	// Report tells the sender behind the source of the reception's progress
	// or verdict (the relay reports delivery itself: a no-op there).
	Report(m *protocol.DCMessage)
}

// ChunkSink is where a reception's verified plaintext goes. The Receiver
// calls it from one goroutine only.
type ChunkSink interface {
	// Has reports whether chunk i is held already (resume).
	Has(i uint32) bool
	// Held returns the chunks and bytes held so far.
	Held() (chunks uint32, bytes int64)
	// Ranges lists the chunks held as [lo, hi) ranges.
	Ranges() [][2]uint32
	// Write stores chunk i: want bytes of plaintext, padding removed.
	Write(i uint32, plain []byte) error
	// Flush makes what is held survive a restart (best effort).
	Flush() error
	// Finish checks the whole file against the manifest and hands it over;
	// it returns where the file went and its SHA-256.
	Finish() (path, sum string, err error)
	// Abort drops what was received; Close keeps it for a later resume.
	Abort()
	Close()
}
