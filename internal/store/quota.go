package store

// quota counts stored bytes per origin (a client address) and per sender
// (a member of a room), under the store's lock.
type quota struct {
	maxOrigin, maxSender int64
	origins              map[string]int64
	senders              map[senderKey]int64
}

type senderKey struct{ room, member string }

func newQuota(maxOrigin, maxSender int64) quota {
	return quota{maxOrigin: maxOrigin, maxSender: maxSender,
		origins: make(map[string]int64), senders: make(map[senderKey]int64)}
}

// fits reports whether it's origin and sender may store size more bytes.
func (q *quota) fits(it *Item, size int64) bool {
	sender, origin := q.over(it, size)
	return sender <= 0 && origin <= 0
}

// over returns how many bytes it's sender and origin are over their
// quotas with size more (0 or less: within).
func (q *quota) over(it *Item, size int64) (sender, origin int64) {
	sender = q.senders[senderKey{it.Room, it.Sender}] + size - q.maxSender
	if it.Origin != "" {
		origin = q.origins[it.Origin] + size - q.maxOrigin
	}
	return sender, origin
}

// add counts size bytes (negative: freed) for it's origin and sender.
func (q *quota) add(it *Item, size int64) {
	if it.Origin != "" {
		addKey(q.origins, it.Origin, size)
	}
	addKey(q.senders, senderKey{it.Room, it.Sender}, size)
}

func addKey[K comparable](m map[K]int64, k K, n int64) {
	if v := m[k] + n; v > 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}
