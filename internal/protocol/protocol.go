// Package protocol holds Cloakroom's wire format: the JSON control messages and
// the binary chunk frames exchanged over the signaling WebSocket, their
// version, size limits and validation. It is shared by the server and the Go
// client and imports only the standard library.
//
// Flow (see docs/PROTOCOL.md for the full description):
//
//	client                          server
//	join{room,verifier,member,pub,mac} ->
//	                                <- welcome{member,members} | error{bad_verifier}
//	                                <- presence{join|online|offline|leave}
//	msg{data}                       ->  stored, owed to every known member
//	                                <- msg{id,from,data}     (to each other member)
//	ack{ids}                        ->  item deleted once every owed member acked
//	file{file,chunks,data}          ->  manifest stored, owed to members online now
//	                                <- file_ok{file,recipients}
//	binary ChunkUp frames           ->  stored (blocking while the relay is full)
//	                                <- binary ChunkDown frames (to each recipient)
//	                                <- progress / delivered / undeliverable (to the sender)
//	signal{to,data}                 ->  <- signal{from,data} (to one member)
package protocol

import "time"

// Version is the protocol version carried in join and welcome.
const Version = 4

// Size limits. Every frame from the network is checked against them before it
// is parsed.
const (
	// MaxControlBytes bounds one JSON control message.
	MaxControlBytes = 64 << 10
	// MaxEnvelopeBytes bounds the sealed payload (before base64) of a msg or file.
	MaxEnvelopeBytes = 32 << 10
	// MaxSignalBytes bounds the sealed payload (before base64) of a signal
	// (44 KiB since version 4: a lib signal carries a whole sealed manifest;
	// in base64 inside its JSON it still fits MaxControlBytes).
	MaxSignalBytes = 44 << 10
	// ChunkSize is the plaintext size of every file chunk but the last. A sealed
	// chunk (ChunkSize + 16-byte tag) plus the largest frame header fits one
	// 64 KiB data-channel message.
	ChunkSize = 64512
	// MaxSealedChunk is the largest sealed chunk: ChunkSize plus the GCM tag.
	MaxSealedChunk = ChunkSize + 16
	// MaxChunks bounds the chunk count of one file (about 1 TiB).
	MaxChunks = 1 << 24
	// MaxFrameBytes bounds any WebSocket message, text or binary.
	MaxFrameBytes = 64 << 10
	// MaxAckIDs bounds the ids in one ack.
	MaxAckIDs = 1024
	// MaxMembers bounds the members listed in a welcome.
	MaxMembers = 1024
	// MaxICEServers bounds the ICE servers in a welcome or turn message, and
	// MaxICEURLs the URLs of each.
	MaxICEServers = 4
	MaxICEURLs    = 8
)

// Timing shared by both ends of the WebSocket.
const (
	// PingInterval is how often the server pings a client.
	PingInterval = 20 * time.Second
	// PongWait is how long the server waits for any frame (pong included)
	// before dropping a client.
	PongWait = 45 * time.Second
	// WriteWait bounds one write to a peer.
	WriteWait = 15 * time.Second
)

// Control message types (the "t" field).
const (
	// client -> server
	TypeJoin   = "join"
	TypeSignal = "signal" // both directions
	TypeMsg    = "msg"    // both directions
	TypeFile   = "file"
	TypeAck    = "ack"
	TypeLeave  = "leave"
	TypeTURN   = "turn" // both directions: request / fresh TURN credentials

	// server -> client
	TypeWelcome       = "welcome"
	TypePresence      = "presence"
	TypeFileOK        = "file_ok"
	TypeProgress      = "progress"
	TypeDelivered     = "delivered"
	TypeUndeliverable = "undeliverable"
	TypeError         = "error"
)

// Presence events.
const (
	EventJoin    = "join"    // a new member, with its announcement
	EventOnline  = "online"  // a known member reconnected
	EventOffline = "offline" // a member's connection dropped; items stay owed to it
	EventLeave   = "leave"   // a member left for good (explicit leave or expiry)
)

// Error codes carried in error messages. Each has a fixed meaning that clients
// turn into a clear message for the user.
const (
	CodeBadRequest   = "bad_request"    // malformed or invalid message
	CodeVersion      = "version"        // unsupported protocol version
	CodeBadVerifier  = "bad_verifier"   // wrong room verifier: not a member
	CodeMemberTaken  = "member_taken"   // member id in use with another key
	CodeNotJoined    = "not_joined"     // message before a successful join
	CodeRoomFull     = "room_full"      // too many members in the room
	CodeTooMany      = "too_many"       // too many rooms or connections
	CodeTooLarge     = "too_large"      // a message or frame over its limit
	CodeRelayFull    = "relay_full"     // the relay store has no room; retry later
	CodeNoSuchMember = "no_such_member" // signal to a member that is not online
	CodeNoSuchFile   = "no_such_file"   // chunk for a file never announced
	CodeRateLimited  = "rate_limited"   // too many requests; slow down
	CodeGoingAway    = "going_away"     // server shutting down; reconnect
	CodeInternal     = "internal"       // server-side failure
)
