// Package auth holds the server-side credential checks: the room verifier
// (the join capability derived from the room secret, of which the server
// keeps only a SHA-256) and TURN REST credentials compatible with coturn's
// static-auth-secret scheme ("TURN REST API", draft-uberti-behave-turn-rest).
// Standard library only.
package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// HashVerifier returns the SHA-256 of a room verifier: what the server stores.
func HashVerifier(v []byte) [32]byte { return sha256.Sum256(v) }

// CheckVerifier reports whether v hashes to stored, in constant time.
func CheckVerifier(stored [32]byte, v []byte) bool {
	h := sha256.Sum256(v)
	return subtle.ConstantTimeCompare(h[:], stored[:]) == 1
}

// TURN credential errors.
var (
	ErrTURNExpired = errors.New("turn: credentials expired")
	ErrTURNBad     = errors.New("turn: bad credentials")
)

// MaxTURNUsername bounds a TURN username: the STUN USERNAME attribute holds
// at most 513 bytes (RFC 8489 section 14.3).
const MaxTURNUsername = 513

// MintTURN returns ephemeral TURN credentials for user valid for ttl from now:
// username = "<unix expiry>:<user>", password = base64(HMAC-SHA1(secret,
// username)), as coturn's use-auth-secret/static-auth-secret expects.
func MintTURN(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, TURNPassword(secret, username)
}

// TURNPassword returns the password of a TURN REST username:
// base64 (standard, padded) of HMAC-SHA1(secret, username). A TURN server's
// auth handler derives its long-term key from it.
func TURNPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyTURN checks TURN REST credentials at time now: the password must be
// the HMAC of the username (constant-time compare; else ErrTURNBad) and the
// expiry in the username must be in the future (else ErrTURNExpired). The
// username is "<unix expiry>:<user>" or, as coturn also accepts, just
// "<unix expiry>".
func VerifyTURN(secret []byte, username, password string, now time.Time) error {
	expiry, _, err := parseTURNUsername(username)
	if err != nil {
		return err
	}
	want := TURNPassword(secret, username)
	if subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 {
		return ErrTURNBad
	}
	if now.Unix() >= expiry { // coturn: expired when timestamp <= now
		return ErrTURNExpired
	}
	return nil
}

// parseTURNUsername splits "<expiry>[:<user>]". The expiry is 1 to 19
// decimal digits without sign (a positive int64).
func parseTURNUsername(username string) (expiry int64, user string, err error) {
	if len(username) > MaxTURNUsername {
		return 0, "", ErrTURNBad
	}
	ts, user, _ := strings.Cut(username, ":")
	if len(ts) == 0 || len(ts) > 19 {
		return 0, "", ErrTURNBad
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, "", ErrTURNBad
		}
	}
	expiry, err = strconv.ParseInt(ts, 10, 64)
	if err != nil || expiry <= 0 {
		return 0, "", ErrTURNBad
	}
	return expiry, user, nil
}
