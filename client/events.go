package client

import (
	"slices"

	"cloakroom/internal/protocol"
)

// The client is its room session's roomEvents: it routes what the server
// and members say about files to the sends (fileEvent, in send_relay.go)
// and the receiver (manifest and chunk, in recv.go), and signals to the peer
// sessions.

var _ roomEvents = (*Client)(nil)

func (c *Client) signal(from string, body *protocol.Signal) {
	switch body.Kind {
	case protocol.SignalHave:
		c.routeHave(from, body)
	case protocol.SignalLib:
		c.onLib(from, body)
	case protocol.SignalHist:
		c.room.onHist(body)
	case protocol.SignalName:
		c.room.setName(from, body.Name)
	case protocol.SignalXfer:
		c.onXfer(from, body)
	default:
		c.peers.routeSignal(from, body)
	}
}

// verified: a member answered the presence challenge; it gets the library
// and the recent chat.
func (c *Client) verified(member string, hist []protocol.HistItem) {
	for _, f := range c.fetches() { // a holder heard of before it was verified
		if slices.Contains(f.e.holderIDs(), member) {
			c.maybeLink(f, member)
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.greet(member, hist)
	}()
}

func (c *Client) tampered(from string, err error) { c.peers.abortPeer(from, err) }

func (c *Client) presence(member, event string) {
	c.mu.Lock()
	sends := make([]*sendState, 0, len(c.sends))
	for _, s := range c.sends {
		sends = append(sends, s)
	}
	c.mu.Unlock()
	for _, s := range sends {
		s.presence(member, event)
	}
}

// connLost aborts every relay round in progress: the server lost them.
func (c *Client) connLost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sends {
		s.abort(err)
	}
}

// ResetPeers ends every peer-to-peer session, as a change of network would.
// With transport auto a file whose session breaks this way continues through
// the relay from the chunks its receiver already holds.
func (c *Client) ResetPeers() { c.peers.resetAll() }
