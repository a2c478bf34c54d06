// Package testport picks ports for tests that must name a port before
// something listens on it (a NATS cluster's routes, a TURN server's port).
//
// Asking the kernel for a free port (listen on :0, close, hand the number
// on) races: the port comes from the ephemeral range, and until the
// program under test binds it, any outgoing connection on the machine
// may take it. CI's failover test once lost a NATS route port this way.
// Free therefore picks ports BELOW the kernel's ephemeral range, which the
// kernel never hands out by itself, and checks that they are free.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the first port Free considers.
const lowest = 10000

// Free returns a port on ip that is free for TCP (and for UDP too when
// udp is set), outside the kernel's ephemeral range.
func Free(ip string, udp bool) (int, error) {
	high := ephemeralLow()
	for range 200 {
		port := lowest + rand.IntN(high-lowest)
		if free(ip, port, udp) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s below %d after 200 tries", ip, high)
}

func free(ip string, port int, udp bool) bool {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	tl, err := net.Listen("tcp4", addr)
	if err != nil {
		return false
	}
	defer tl.Close()
	if !udp {
		return true
	}
	ul, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return false
	}
	ul.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// default 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				return n
			}
		}
	}
	return 32768
}
