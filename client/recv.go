package client

import (
	"context"
	"fmt"
	"slices"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// File is a received file (or a failed reception, with Err set).
type File = transfer.File

// Progress reports a transfer's advance.
type Progress = transfer.Progress

// SafeName makes a sender-chosen file name safe to create and to print: no
// path separators, no control or bidi-format characters, not hidden.
func SafeName(name string) string { return transfer.SafeName(name) }

// NextFile waits for the next received (or failed) file.
func (c *Client) NextFile(ctx context.Context) (File, error) {
	select {
	case f := <-c.files:
		return f, nil
	case <-ctx.Done():
		return File{}, ctx.Err()
	case <-c.room.done:
		select {
		case f := <-c.files:
			return f, nil
		default:
		}
		if err := c.Err(); err != nil {
			return File{}, err
		}
		return File{}, fmt.Errorf("client closed: %w", ErrClosed)
	}
}

// manifest starts the reception of a file announced through the relay.
func (c *Client) manifest(m *protocol.Message, meta crypto.EnvelopeMeta, sealed []byte) error {
	man, err := c.keys.OpenManifest(meta, sealed)
	if err != nil {
		c.log.Warn("file manifest failed to open; dropping", "from", m.From, "err", err)
		return c.room.ack(m.ID)
	}
	st := protocol.Stamp{Session: man.Sess, Seq: man.Seq, Time: man.TS}
	if err := st.Validate(); err != nil {
		c.log.Warn("file manifest without a valid stamp; dropping", "from", m.From, "err", err)
		return c.room.ack(m.ID)
	}
	if _, ok := c.room.judge(m.From, st, "file announcement"); !ok {
		return c.room.ack(m.ID)
	}
	if e, _, err := c.addEntry(m.From, man.File, man.Chunks, sealed); err == nil {
		e.noteHolder(m.From, true)
	}
	if err := c.recv.Start(c.ctx, man, m.From, relaySource{}); err != nil {
		c.deliverFile(File{ID: man.File, Name: man.Name, From: m.From, Err: err})
	}
	return c.room.ack(m.ID)
}

// chunk opens one relay chunk in the read loop and hands it to the
// receiver, so reading and decrypting the next chunk overlaps writing this one.
func (c *Client) chunk(d *protocol.ChunkDown) error {
	return c.recv.Chunk(c.ctx, d, relaySource{})
}

// relaySource is the ChunkSource of chunks from the relay store, which
// reports delivery to the sender itself.
type relaySource struct{}

func (relaySource) Path() protocol.Path        { return protocol.PathRelay }
func (relaySource) Gone() <-chan struct{}      { return nil }
func (relaySource) Report(*protocol.DCMessage) {}

// recvHost is the client as the receiver's Host.
type recvHost struct{ c *Client }

func (h recvHost) Progress(p Progress) { h.c.progress(p) }
func (h recvHost) Deliver(f File)      { h.c.deliverFile(f) }
func (h recvHost) Ack(items []uint64) error {
	return h.c.room.writeJSON(&protocol.Message{Type: protocol.TypeAck, IDs: items})
}
func (h recvHost) Online(member string) bool {
	return slices.Contains(h.c.room.OnlineMembers(), member)
}
func (h recvHost) TellHave(to string, body *protocol.Signal) error {
	return h.c.room.sendSignal(to, body)
}
func (h recvHost) Stored(file string, index uint32) {
	if e := h.c.lib.get(file); e != nil {
		e.markHeld(index)
	}
	if f := h.c.fetchOf(file); f != nil {
		f.written(index)
	}
}

// deliverFile hands a received (or failed) file to NextFile; a received
// one becomes a held library entry, served from where it was written.
func (c *Client) deliverFile(f File) {
	if fe := c.fetchOf(f.ID); fe != nil {
		f.Helpers, f.Dropped = fe.report()
		f.Links = fe.stripes.delivered()
		fe.poke()
	}
	if e := c.lib.get(f.ID); e != nil && f.Err != nil {
		e.failed(f.Err)
	} else if e != nil {
		e.setCopy(f.Path, true)
		if len(e.hashes.Missing()) > 0 {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.completeHashes(e)
			}()
		}
	}
	select {
	case c.files <- f:
	default:
		c.log.Warn("received-file queue full; caller is not reading NextFile", "file", f.ID)
	}
}

func (c *Client) progress(p Progress) {
	if c.opts.OnProgress != nil {
		c.opts.OnProgress(p)
	}
}
