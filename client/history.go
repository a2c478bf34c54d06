package client

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// Chat history (docs/PROTOCOL.md "Signals", hist): each member keeps the
// last HistoryLength chat envelopes it saw or sent, as sealed, and gives
// them to a member whose presence it has just verified. The server never
// holds history: it forwards sealed signals.

// remember keeps a chat envelope for newcomers.
func (r *room) remember(from string, sealed []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, protocol.HistItem{From: from, Env: protocol.EncodeB64(sealed)})
	r.histSeq++
	if n := len(r.history) - protocol.HistoryLength; n > 0 {
		r.history = slices.Delete(r.history, 0, n)
	}
}

// histBatchBytes keeps a hist signal's JSON well under MaxSignalBytes.
const histBatchBytes = 32 << 10

// historyForLocked is the history a member verified now gets: the chat
// remembered up to the moment we learned it is here (challenged it). What
// came after was sent, or forwarded by the server, after the server had
// the member in the room, so it reaches the member live; in the history
// too, it would be shown as "earlier" when the signal wins the race.
func (r *room) historyForLocked(member string) []protocol.HistItem {
	var after uint64 // remembered since the challenge
	if mark, ok := r.histMark[member]; ok && mark <= r.histSeq {
		after = r.histSeq - mark
	}
	n := len(r.history) - int(min(after, uint64(len(r.history))))
	return slices.Clone(r.history[:n])
}

// sendHistory gives member the chat items, oldest first, in signals under
// the size limit.
func (r *room) sendHistory(member string, items []protocol.HistItem) {
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && (n == 0 || size+len(items[n].Env)+len(items[n].From)+24 < histBatchBytes) {
			size += len(items[n].Env) + len(items[n].From) + 24
			n++
		}
		if err := r.sendSignal(member, &protocol.Signal{Kind: protocol.SignalHist, Session: randomSession(), Items: items[:n]}); err != nil {
			r.log.Debug("chat history not sent", "member", short8(member), "err", err)
			return
		}
		items = items[n:]
	}
}

// onHist shows the chat a member gave as history: each envelope opened as
// its author sealed it, with a valid stamp, not seen before, in the
// authors' clock order. Later live messages of the same sessions follow
// without a gap.
func (r *room) onHist(s *protocol.Signal) {
	type item struct {
		chat   Chat
		stamp  protocol.Stamp
		sealed []byte
	}
	var got []item
	for _, it := range s.Items {
		sealed, err := protocol.DecodeB64(it.Env)
		if err != nil {
			continue
		}
		id, plain, err := r.keys.OpenEnvelope(crypto.EnvelopeMeta{Sender: it.From}, sealed)
		if err != nil {
			r.log.Warn("history item failed to open; dropping", "author", short8(it.From))
			continue
		}
		var body chatBody
		if json.Unmarshal(plain, &body) != nil || body.Kind != "chat" || body.Stamp.Validate() != nil || !r.markSeen(id) {
			continue
		}
		got = append(got, item{chat: Chat{From: it.From, Text: body.Text, ID: hex.EncodeToString(id[:]), Sent: time.UnixMilli(body.Time), History: true},
			stamp: body.Stamp, sealed: sealed})
	}
	slices.SortStableFunc(got, func(a, b item) int { return a.chat.Sent.Compare(b.chat.Sent) })
	for _, it := range got {
		r.mu.Lock()
		if it.chat.From != r.id {
			r.order.Baseline(it.chat.From, it.stamp.Session, it.stamp.Seq)
		}
		r.mu.Unlock()
		r.remember(it.chat.From, it.sealed)
		if r.opts.OnChat != nil {
			it.chat.Name = r.nameOf(it.chat.From)
			r.opts.OnChat(it.chat)
		}
	}
}
