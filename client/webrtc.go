package client

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/proxy"

	"cloakroom/internal/pionlog"
	"cloakroom/internal/udpbatch"
)

// udpBuffer is the socket buffer size for data-channel UDP sockets: without
// it the kernel drops packets at a few hundred Mbit/s (FACTS.md).
const udpBuffer = 4 << 20

// NewWebRTCAPI makes the pion API every peer connection of a client uses
// (exported so benchmarks measure raw pion with the same settings).
func NewWebRTCAPI(log *slog.Logger) *webrtc.API { return newWebRTCAPI(log, nil, nil) }

// newWebRTCAPI is NewWebRTCAPI with iceDialer (non-nil) carrying every TURN
// connection over TCP or TLS (turnDialer: through a proxy), and hostAddr
// (non-nil) choosing the addresses of host candidates (Options.HostAddr).
func newWebRTCAPI(log *slog.Logger, iceDialer proxy.Dialer, hostAddr func(net.IP) bool) *webrtc.API {
	var se webrtc.SettingEngine
	if iceDialer != nil {
		se.SetICEProxyDialer(iceDialer)
	}
	if hostAddr != nil {
		se.SetIPFilter(hostAddr)
	}
	se.SetIncludeLoopbackCandidate(true) // members on one machine (tests, phone+PC dev)
	se.EnableSCTPZeroChecksum(true)
	se.SetRelayAcceptanceMinWait(0)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	// pion warns about routine events (no candidate pair yet, a socket
	// closed at teardown); users see them only when they ask for debug.
	pionMin := slog.LevelError
	if log != nil && log.Enabled(context.Background(), slog.LevelDebug) {
		pionMin = slog.LevelWarn
	}
	se.LoggerFactory = pionlog.New(log, pionMin)
	if n, err := stdnet.NewNet(); err == nil {
		se.SetNet(bufferedNet{n})
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// bufferedNet is the standard network with large UDP socket buffers.
type bufferedNet struct{ *stdnet.Net }

func (b bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := b.Net.ListenUDP(network, laddr)
	if err == nil {
		setBuffers(c)
	}
	return c, err
}

// ListenPacket is what ICE opens for a TURN server over UDP (and for
// nothing else): its reads go in batches, as the TURN server relays two
// peers' traffic to it.
func (b bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := b.Net.ListenPacket(network, address)
	if err != nil {
		return c, err
	}
	setBuffers(c)
	if u, ok := c.(*net.UDPConn); ok {
		return udpbatch.NewConn(u, turnDatagram), nil
	}
	return c, nil
}

// turnDatagram bounds a datagram from a TURN server: a relayed WebRTC
// packet (pion's SCTP receive MTU is 8192) in ChannelData or a STUN answer.
const turnDatagram = 8192

func setBuffers(c any) {
	if u, ok := c.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		_ = u.SetReadBuffer(udpBuffer)
		_ = u.SetWriteBuffer(udpBuffer)
	}
}
