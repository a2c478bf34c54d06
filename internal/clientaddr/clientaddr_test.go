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
