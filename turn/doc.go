// Package turn will hold the embedded TURN server (pion/turn v4): UDP and TCP
// listeners, ephemeral credentials (internal/auth), a peer-address policy and
// quotas. The relay-only first slice of Cloakroom does not start it yet; see
// the peer-to-peer issue.
package turn
