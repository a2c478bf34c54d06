package signaling

import "errors"

// ErrConfig is wrapped by every configuration error from New.
var ErrConfig = errors.New("signaling: invalid config")

// Reasons a connection ends, used in logs and close frames.
var (
	errSlow        = errors.New("send queue full: client too slow")
	errTooManyBad  = errors.New("too many bad requests")
	errReplaced    = errors.New("replaced by a newer connection of the same member")
	errWriteFailed = errors.New("write failed")
)

// errBadVerifier: the cluster's registry holds another verifier for the room.
var errBadVerifier = errors.New("wrong room verifier")
