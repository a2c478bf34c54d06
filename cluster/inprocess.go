package cluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A batch published again after an error carries the same message ids, so
// the stream stores each event once. But when a stream leader dies with a
// publish proposed and not committed, its successor may keep that id
// marked "in process" (error 10158): it then refuses the id until its
// duplicate window (a minute) has passed, and a node retrying the batch
// gave up after its own minute with the events lost — the failover test
// saw a transfer stall this way. Such an event goes again under a new id.
// It may then be stored twice; applying an event twice is harmless
// (signaling: items are keyed, acks counted per chunk index, presence
// ordered by stamp).

// jsErrDuplicateInProcess is nats-server's "duplicate message id is in
// process" (JSStreamDuplicateMessageConflict).
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

// renameKeep bounds how long a renamed id is remembered: the batch retry
// (a minute) and then some.
const renameKeep = 2 * time.Minute

func inProcess(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jsErrDuplicateInProcess
}

// renames maps an event's message id to the id it goes under now.
type renames struct {
	mu sync.Mutex
	m  map[string]renamed
}

type renamed struct {
	id string
	n  int // renames so far
	at time.Time
}

// current is the id the event with message id goes under.
func (r *renames) current(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.m[id]; ok {
		return x.id
	}
	return id
}

// rename gives the event with message id a new one (id~1, id~2…), and
// forgets renames older than renameKeep.
func (r *renames) rename(id string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]renamed)
	}
	for k, x := range r.m {
		if now.Sub(x.at) > renameKeep {
			delete(r.m, k)
		}
	}
	n := r.m[id].n + 1
	r.m[id] = renamed{id: fmt.Sprintf("%s~%d", id, n), n: n, at: now}
}
