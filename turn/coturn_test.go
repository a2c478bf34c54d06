package turn

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/auth"
)

// coturn's turnutils_uclient is an independent TURN client: these tests
// check our server against it. In -y mode it runs client pairs relaying to
// each other's relay address; with -e it relays to a peer address and fails
// on the first refused ChannelBind (or CreatePermission with -s).

// uclient runs turnutils_uclient against s with args (before the server
// address) and returns its output and exit status.
func uclient(t *testing.T, s *Server, port int, args ...string) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("turnutils_uclient")
	if err != nil {
		t.Fatal("turnutils_uclient not found: install coturn (apt-get install -y coturn)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "-L", "127.0.0.1", "-p", strconv.Itoa(port), "127.0.0.1")
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("turnutils_uclient %s: timed out\n%s", strings.Join(args, " "), out)
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

var totals = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$`)

// sentReceived parses uclient's final "tot_send_msgs=N, tot_recv_msgs=M".
func sentReceived(t *testing.T, out string) (sent, recv int) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if m := totals.FindStringSubmatch(line); m != nil {
			sent, _ = strconv.Atoi(m[1])
			recv, _ = strconv.Atoi(m[2])
		}
	}
	return sent, recv
}

func TestCoturnClientRelays(t *testing.T) {
	const msgs = 50 // per client; 2 clients = one pair relaying to each other
	pair := []string{"-y", "-c", "-n", strconv.Itoa(msgs), "-l", "1200", "-m", "2", "-z", "1"}
	for _, tc := range []struct {
		name string
		args func(u, p string) []string
		tls  bool
	}{
		{"udp", func(u, p string) []string { return []string{"-u", u, "-w", p} }, false},
		{"tcp", func(u, p string) []string { return []string{"-t", "-u", u, "-w", p} }, false},
		{"tls", func(u, p string) []string { return []string{"-t", "-S", "-u", u, "-w", p} }, true},
		// uclient mints REST credentials itself from the shared secret.
		{"secret", func(string, string) []string { return []string{"-u", "carol", "-W", string(testSecret)} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{AllowLoopback: true}
			if tc.tls {
				cfg.TLSAddr, cfg.TLSConfig = "127.0.0.1:0", testTLS(t)
			}
			s, _ := startServer(t, cfg)
			port := s.udpAddr.Port
			if tc.tls {
				port = s.tlsPort
			}
			u, p := s.Credentials("alice", time.Hour)
			out, code := uclient(t, s, port, append(tc.args(u, p), pair...)...)
			sent, recv := sentReceived(t, out)
			if code != 0 || strings.Contains(out, "error 401") || sent != 2*msgs || recv == 0 {
				t.Fatalf("exit %d, sent %d, received %d:\n%s", code, sent, recv, out)
			}
			t.Logf("sent %d, received %d; stats %+v", sent, recv, s.Stats())
			if st := s.Stats(); st.BytesRelayed < uint64(recv*1200) {
				t.Fatalf("BytesRelayed %d < %d", st.BytesRelayed, recv*1200)
			}
		})
	}
}

func TestCoturnClientBadCredentials(t *testing.T) {
	now := time.Now()
	past, pastPW := auth.MintTURN(testSecret, "bob", time.Minute, now.Add(-2*time.Minute))
	good, _ := auth.MintTURN(testSecret, "bob", time.Hour, now)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong password", []string{"-u", good, "-w", "wrong"}},
		{"expired", []string{"-u", past, "-w", pastPW}},
		{"wrong password tcp", []string{"-t", "-u", good, "-w", "wrong"}},
		{"other secret", []string{"-u", "bob", "-W", "another-secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := startServer(t, Config{AllowLoopback: true})
			out, code := uclient(t, s, s.udpAddr.Port, append(tc.args, "-y", "-c", "-n", "5", "-m", "1")...)
			// uclient answers a 401 by retrying with the new nonce and
			// gives up with this line, exactly as against coturn itself;
			// other codes it prints ("error 400 ()" from plain pion).
			if code == 0 || !strings.Contains(out, "ERROR: Cannot complete Allocation") || strings.Contains(out, "error 4") {
				t.Fatalf("exit %d, want uclient's failure on 401:\n%s", code, out)
			}
			if st := s.Stats(); st.AuthRefused == 0 || st.Allocations != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestCoturnClientPeerRefused(t *testing.T) {
	for _, peer := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.5", "224.0.0.1"} {
		for _, mode := range []struct{ name, flag, want string }{
			{"ChannelBind", "", "channel bind: error 403 (Forbidden IP)"},
			{"CreatePermission", "-s", "create permission error 403 (Forbidden IP)"},
		} {
			t.Run(peer+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				s, _ := startServer(t, Config{}) // no AllowLoopback, no AllowPrivate
				u, p := s.Credentials("alice", time.Hour)
				args := []string{"-u", u, "-w", p, "-c", "-e", peer, "-n", "5", "-m", "1"}
				if mode.flag != "" {
					args = append(args, mode.flag)
				}
				out, code := uclient(t, s, s.udpAddr.Port, args...)
				if code == 0 || !strings.Contains(out, mode.want) {
					t.Fatalf("exit %d, want failure with %q:\n%s", code, mode.want, out)
				}
				if st := s.Stats(); st.PermissionRefused == 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}
