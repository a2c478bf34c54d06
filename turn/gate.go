package turn

import (
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
	pionturn "github.com/pion/turn/v4"

	"cloakroom/internal/auth"
)

// protoUDP is the REQUESTED-TRANSPORT value for UDP (RFC 8656 section 18.7).
const protoUDP = 17

// counters are the refusals and bytes reported by Stats.
type counters struct {
	authRefused  atomic.Uint64
	permRefused  atomic.Uint64
	quotaRefused atomic.Uint64
	bytes        atomic.Uint64
	dropped      atomic.Uint64
}

// gate checks TURN requests before pion handles them (see doc.go): it
// answers bad credentials with 401, refused peers with 403 and non-UDP
// relays with 442, and drops Send indications to refused peers. Everything
// else, and every request it lets through, goes on to pion unchanged.
type gate struct {
	realm   string
	secret  []byte
	now     func() time.Time
	policy  *policy
	stats   *counters
	log     *slog.Logger
	revoked *revocations
}

// key returns the long-term key of a TURN REST username, or false when the
// username is malformed, expired, or for another realm. pion's AuthHandler
// uses it too.
func (g *gate) key(username, realm string) ([]byte, bool) {
	if realm != g.realm {
		return nil, false
	}
	password := auth.TURNPassword(g.secret, username)
	// With the password it derived itself, VerifyTURN checks only the
	// username's form and expiry.
	if auth.VerifyTURN(g.secret, username, password, g.now()) != nil {
		return nil, false
	}
	return pionturn.GenerateAuthKey(username, realm, password), true
}

// userID returns the id part of "<expiry>:<id>" (quotas count per id).
func userID(username string) string {
	_, id, _ := strings.Cut(username, ":")
	return id
}

// inspect looks at one frame from a client. drop means pion must not see
// it; reply, if not nil, is the answer to send back. m is scratch space
// reused between calls by one reader.
func (g *gate) inspect(m *stun.Message, b []byte, from net.Addr) (reply []byte, drop bool) {
	if g.revoked.dropFrom(from) {
		return nil, true // an allocation of a member who left: relay nothing more
	}
	// ChannelData (first two bits 01): its peer was checked at ChannelBind.
	if len(b) == 0 || b[0]&0xC0 != 0 || !stun.IsMessage(b) {
		return nil, false
	}
	m.Raw = b
	if m.Decode() != nil {
		return nil, false // pion drops it too
	}
	switch {
	case m.Type == stun.NewType(stun.MethodSend, stun.ClassIndication):
		return nil, g.dropSend(m, from)
	case m.Type.Class != stun.ClassRequest || !m.Contains(stun.AttrMessageIntegrity):
		return nil, false // pion answers; unauthenticated requests get its 401 challenge
	}
	switch m.Type.Method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return nil, false
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, false // pion answers 400
	}
	key, ok := g.key(user.String(), realm.String())
	if ok && g.revoked.isRevoked(userID(user.String())) {
		ok = false
	}
	if !ok || stun.MessageIntegrity(key).Check(m) != nil {
		g.stats.authRefused.Add(1)
		g.log.Debug("turn: refused credentials", "client", from, "user", userID(user.String()))
		return g.unauthorized(m), true
	}
	if code := g.refusal(m, from, userID(user.String())); code != 0 {
		return build(m, code, stun.MessageIntegrity(key)), true
	}
	return nil, false
}

// refusal returns the error code for an authenticated request the policy
// refuses, or 0.
func (g *gate) refusal(m *stun.Message, from net.Addr, user string) stun.ErrorCode {
	switch m.Type.Method {
	case stun.MethodAllocate:
		if v, err := m.Get(stun.AttrRequestedTransport); err == nil && len(v) > 0 && v[0] != protoUDP {
			return stun.CodeUnsupportedTransProto
		}
	case stun.MethodCreatePermission, stun.MethodChannelBind:
		var peer stun.XORMappedAddress
		refused := ""
		_ = m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
			if peer.GetFromAs(m, stun.AttrXORPeerAddress) == nil && refused == "" {
				refused = g.policy.refusal(toAddr(peer.IP), peer.Port)
			}
			return nil
		})
		if refused != "" {
			g.stats.permRefused.Add(1)
			g.log.Debug("turn: refused peer", "client", from, "user", user,
				"peer", peer.IP, "port", peer.Port, "reason", refused)
			return stun.CodeForbidden // reason "Forbidden IP", as coturn says
		}
	}
	return 0
}

// dropSend applies the port rule to a Send indication. Its peer IP already
// has a permission, so only the port can be refused; pion checks the IP.
func (g *gate) dropSend(m *stun.Message, from net.Addr) bool {
	if !g.policy.portRule {
		return false
	}
	var peer stun.XORMappedAddress
	if peer.GetFromAs(m, stun.AttrXORPeerAddress) != nil {
		return false
	}
	if why := g.policy.refusal(toAddr(peer.IP), peer.Port); why != "" {
		g.stats.permRefused.Add(1)
		g.log.Debug("turn: dropped send", "client", from, "peer", peer.IP, "port", peer.Port, "reason", why)
		return true
	}
	return false
}

// unauthorized builds a 401 with REALM and the client's NONCE (RFC 8489
// section 9.2.4): the credentials are wrong, so no MESSAGE-INTEGRITY.
func (g *gate) unauthorized(m *stun.Message) []byte {
	var nonce stun.Nonce
	if nonce.GetFrom(m) == nil {
		return build(m, stun.CodeUnauthorized, stun.NewRealm(g.realm), nonce)
	}
	return build(m, stun.CodeUnauthorized, stun.NewRealm(g.realm))
}

// build makes the error response to m.
func build(m *stun.Message, code stun.ErrorCode, attrs ...stun.Setter) []byte {
	var ec stun.Setter = code
	if code == stun.CodeForbidden {
		ec = &stun.ErrorCodeAttribute{Code: code, Reason: []byte("Forbidden IP")}
	}
	setters := append([]stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		ec,
	}, attrs...)
	setters = append(setters, stun.Fingerprint)
	r, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return r.Raw
}
