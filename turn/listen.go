package turn

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// samePortTries bounds the attempts to get one free port for UDP and TCP
// when Addr asks for port 0.
const samePortTries = 20

// listenPair opens UDP and TCP on addr, on the same port.
func listenPair(addr string) (*net.UDPConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("turn: Addr %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = samePortTries
	}
	for i := 0; ; i++ {
		udp, tcp, err := listenOnce(host, port)
		if err == nil || i+1 == tries {
			return udp, tcp, err
		}
	}
}

func listenOnce(host, port string) (*net.UDPConn, net.Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, nil, fmt.Errorf("turn: %w", err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, nil, fmt.Errorf("turn: %w", err)
	}
	bound := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, bound))
	if err != nil {
		_ = udp.Close()
		return nil, nil, fmt.Errorf("turn: %w", err)
	}
	tuneUDP(udp)
	return udp, tcp, nil
}

func listenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	return tls.NewListener(ln, cfg), nil
}

// detectPublicIP picks the relay address when Config.PublicIP is nil: the
// listener's IPv4 address if it is a specific one, else the first IPv4
// address of an up, non-loopback interface, else 127.0.0.1.
func detectPublicIP(bound net.IP) net.IP {
	if ip4 := bound.To4(); ip4 != nil && !ip4.IsUnspecified() {
		return ip4
	}
	if bound.IsLoopback() { // [::1]: relays on IPv4 loopback
		return net.IPv4(127, 0, 0, 1).To4()
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := n.IP.To4(); ip4 != nil && !ip4.IsLinkLocalUnicast() {
				return ip4
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}

// interfaceAddrs lists the addresses of every local interface.
func interfaceAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, toAddr(n.IP))
		}
	}
	return out
}

// relayBindIP is where relay sockets listen: on ip itself when it is an
// address of this host, else (behind 1:1 NAT, e.g. a cloud VM's public IP)
// on every interface, announcing ip.
func relayBindIP(ip net.IP) net.IP {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		return net.IPv4zero.To4()
	}
	_ = c.Close()
	return ip
}
