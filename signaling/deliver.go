package signaling

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// window bounds the relay bytes (and items) handed to the writer and not yet
// acked by the client.
type window struct {
	limit   int64
	mu      sync.Mutex
	used    int64
	flights map[uint64]flight
	wake    chan struct{} // 1-slot: an ack freed space
	// progress: when the window last went from empty to busy, or an ack
	// freed an item (Sweep tells a member that stopped acking from it).
	progress time.Time
	now      func() time.Time
}

// flight is an item delivered on this connection and not yet acked.
type flight struct {
	size  int64
	chunk bool
	index uint32 // chunk index, when chunk
}

func (w *window) init(limit int64, now func() time.Time) {
	w.limit, w.now = limit, now
	w.flights = make(map[uint64]flight)
	w.wake = make(chan struct{}, 1)
}

// fits reports whether size more bytes may be sent now; one item always may
// when nothing is in flight.
func (w *window) fits(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.flights) == 0 || (w.used+size <= w.limit && len(w.flights) < maxFlightItems)
}

func (w *window) add(id uint64, f flight) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.flights[id]; !dup {
		if len(w.flights) == 0 {
			w.progress = w.now()
		}
		w.flights[id] = f
		w.used += f.size
	}
}

// release forgets item id if it was in flight.
func (w *window) release(id uint64) (flight, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.flights[id]
	if ok {
		delete(w.flights, id)
		w.used -= f.size
		w.progress = w.now()
	}
	return f, ok
}

// stalled reports whether items have been in flight for longer than d
// without a single ack.
func (w *window) stalled(now time.Time, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.flights) > 0 && now.Sub(w.progress) > d
}

func (w *window) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// delivery hands the writer the relay items owed to the member, oldest
// first, within the window. It starts at the oldest item still owed, so a
// reconnected client gets everything it has not acked. Only the writer
// uses it.
type delivery struct {
	c       *conn
	room    string
	me      string
	cursor  uint64          // the last item handed out
	changed <-chan struct{} // the room's items changed since the last look; nil while the window is full
}

// newDelivery is called by the writer once c has joined (c.room and c.mem
// are set before c.joined is closed).
func (c *conn) newDelivery() *delivery {
	return &delivery{c: c, room: c.room.id, me: c.mem.id}
}

// next returns the next item to write, if one is owed and fits the window.
func (d *delivery) next() (outFrame, bool) {
	if d == nil {
		return outFrame{}, false
	}
	st := d.c.s.store
	for {
		d.changed = st.Changed(d.room)
		it, ok := st.Next(d.room, d.me, d.cursor)
		if !ok {
			return outFrame{}, false
		}
		if !d.c.win.fits(it.Size()) {
			d.changed = nil // an ack wakes the writer (win.wake)
			return outFrame{}, false
		}
		d.cursor = it.ID
		out, fl, err := frameFor(it)
		if err != nil {
			d.c.s.log.Error("signaling: undeliverable item", "err", err)
			continue
		}
		d.c.win.add(it.ID, fl)
		return out, true
	}
}

// wait returns a channel that is ready when there may be more to deliver
// (nil: nothing to wait for here).
func (d *delivery) wait() <-chan struct{} {
	if d == nil {
		return nil
	}
	return d.changed
}

// frameFor turns a stored item into its wire form.
func frameFor(it store.Item) (outFrame, flight, error) {
	fl := flight{size: it.Size()}
	switch it.Kind {
	case store.KindEnvelope:
		b, err := envelopeMsg(it)
		return outFrame{text: true, body: b}, fl, err
	case store.KindChunk:
		ch, err := protocol.ParseChunkUp(it.Data)
		if err != nil {
			return outFrame{}, fl, fmt.Errorf("item %d: %w", it.ID, err)
		}
		sender, err := uuid.Parse(it.Sender)
		if err != nil {
			return outFrame{}, fl, fmt.Errorf("item %d sender: %w", it.ID, err)
		}
		d := protocol.ChunkDown{Item: it.ID, Sender: sender, Chunk: ch}
		fl.chunk, fl.index = true, ch.Index
		return outFrame{head: d.DownHeader(), body: ch.Sealed}, fl, nil
	}
	return outFrame{}, fl, fmt.Errorf("item %d of unknown kind %d", it.ID, it.Kind)
}

// envelopeMsg is msg{id, from, data} for an envelope item, with file and
// chunks for a manifest (stored as 4-byte chunk count ‖ envelope).
func envelopeMsg(it store.Item) ([]byte, error) {
	data, file, chunks := it.Data, "", uint32(0)
	if it.File != "" {
		if len(data) < 5 {
			return nil, fmt.Errorf("item %d: short manifest", it.ID)
		}
		file, chunks, data = it.File, binary.BigEndian.Uint32(data), data[4:]
	}
	return protocol.EncodeMsg(it.ID, it.Sender, file, chunks, data)
}
