package signaling

import "time"

// setJoinTimeout shortens the time a new connection has to send join.
func (s *Server) setJoinTimeout(d time.Duration) { s.joinTimeout = d }

// onDisconnected sets a function called after each connection is cleaned
// up (its member marked offline if it was the live connection).
func (s *Server) onDisconnected(f func()) { s.hookDisconnected = f }

// onHTTPClosed sets a function called after each HTTP connection of Run's
// server that did not become a WebSocket is closed.
func (s *Server) onHTTPClosed(f func()) { s.hookHTTPClosed = f }
