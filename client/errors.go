package client

import (
	"errors"
	"fmt"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// Sentinel errors; test with errors.Is.
var (
	ErrNoServer    = errors.New("no server")
	ErrTransport   = errors.New("unknown transport")
	ErrUnreachable = errors.New("server unreachable")
	ErrProtocol    = errors.New("protocol error")
	ErrProxy       = errors.New("proxy failed")
	ErrClosed      = errors.New("client closed")
	ErrNoMembers   = errors.New("no other member online")
	ErrIntegrity   = transfer.ErrIntegrity
	ErrFileLost    = errors.New("file not delivered")
	// ErrNoHolder: no online member holds the library entry asked for.
	ErrNoHolder = errors.New("no member online holds that file")

	// The peer-to-peer paths.
	ErrDeclined   = errors.New("peer declined a peer-to-peer connection")
	ErrNoTURN     = errors.New("the server offers no TURN relay")
	ErrICE        = errors.New("peer-to-peer connection failed")
	ErrKeyConfirm = errors.New("key confirmation failed: the data channel is not bound to the member's key")
	ErrPeerGone   = errors.New("peer connection lost")
)

// ServerError is an error message from the server.
type ServerError struct {
	Code string
	Text string
}

func (e *ServerError) Error() string { return fmt.Sprintf("server: %s (%s)", e.Text, e.Code) }

// Fatal reports whether the error ends the session (no point reconnecting).
func (e *ServerError) Fatal() bool {
	switch e.Code {
	case protocol.CodeBadVerifier, protocol.CodeVersion, protocol.CodeMemberTaken:
		return true
	}
	return false
}

func serverError(m *protocol.Message) *ServerError {
	return &ServerError{Code: m.Code, Text: m.Error}
}
