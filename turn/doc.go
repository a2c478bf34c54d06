// Package turn is Cloakroom's embedded TURN server: pion/turn v4 behind a
// small gate of our own.
//
// One port serves UDP and TCP (and an optional second port TLS, "turns:").
// A Mux (mux.go) lets TURN over TLS share an HTTPS port: it terminates TLS
// and hands each connection to HTTP or, by ALPN "stun.turn" or a STUN
// header as its first bytes, to the server (Config.TLSListener).
// Relays are UDP only (pion/turn v4 has no RFC 6062 TCP relaying; WebRTC does
// not need it). Clients authenticate with short-lived TURN REST credentials
// (internal/auth, coturn's static-auth-secret scheme): username
// "<unix expiry>:<user id>", password base64(HMAC-SHA1(secret, username)).
//
// Every request passes a gate (gate.go) before pion sees it. The gate answers
// what pion answers differently from RFC 8656: 401 for bad or expired
// credentials (pion says 400), 403 for a peer address the policy refuses
// (pion sends an error without a code to CreatePermission and 401 to
// ChannelBind), 442 for a non-UDP relay (pion would hand out a UDP relay).
// It also sees the peer port, which pion's PermissionHandler does not. The
// PermissionHandler and AuthHandler given to pion apply the same rules again.
//
// Flow of one allocation:
//
//	client --Allocate (no credentials)--> pion: 401 + NONCE, REALM
//	client --Allocate (USERNAME, MESSAGE-INTEGRITY)--> gate: credentials, expiry
//	  --> pion: AuthHandler, QuotaHandler (per user, total), relay socket
//	      from relayGen (port range, 4 MiB buffers)
//	client --CreatePermission / ChannelBind (peer)--> gate: peer policy --> pion
//	data: ChannelData / Send <--> relay socket <--> peer
//
// See docs/TURN.md for the policy, ports and deployment notes.
package turn
