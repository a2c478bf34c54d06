package turn

import "errors"

// Configuration errors returned by New.
var (
	ErrNoSecret  = errors.New("turn: Secret is required")
	ErrPublicIP  = errors.New("turn: PublicIP must be an IPv4 address (pion/turn v4 relays IPv4 only)")
	ErrTLSConfig = errors.New("turn: TLS needs a tls.Config with a certificate")
	ErrPortRange = errors.New("turn: bad relay port range")
	// ErrAllocationCap: a negative MaxAllocationsPerUser or MaxAllocations.
	ErrAllocationCap = errors.New("turn: negative allocation cap")
)

// errNoTCPRelay is returned to pion when a client asks for a TCP relay
// (RFC 6062); the gate answers such requests with 442 first.
var errNoTCPRelay = errors.New("turn: TCP relays are not supported")

// errCloseTimeout is returned by Close when pion's goroutines did not stop.
var errCloseTimeout = errors.New("turn: close: allocations still open after timeout")
