package clientaddr

import "testing"

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":               "127.0.0.1",
		"[::ffff:10.0.0.1]:80":         "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":             "fe80::/64",
		"not an address":               "not an address",
		"[2001:db8:1:3::1]:1":          "2001:db8:1:3::/64",
		"192.168.1.5":                  "192.168.1.5",
		"[2001:db8:1:2:3:4:5:6]:65535": "2001:db8:1:2::/64",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocal(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.5": true,
		"169.254.1.1": true, "::1": true, "fd00:1:2:3::/64": true, "fe80::/64": true,
		"8.8.8.8": false, "100.64.0.1": false, "172.32.0.1": false, "2001:db8:1:2::/64": false,
		"not an address": false, "": false,
	} {
		if got := Local(in); got != want {
			t.Errorf("Local(%q) = %v, want %v", in, got, want)
		}
	}
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:443", "[fe80::1%eth0]:1", "[::ffff:192.168.0.2]:80"} {
		if !Local(Key(remote)) {
			t.Errorf("Local(Key(%q)) = false", remote)
		}
	}
}
