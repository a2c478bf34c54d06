package keyring

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testParams are cheap (N = 2^10) so the tests run in milliseconds; the
// format and code paths are those of DefaultParams.
var testParams = Params{LogN: 10, R: 8, P: 1}

const (
	pass  = "correct horse battery"
	link1 = "http://127.0.0.1:8080/#s49Vux9hnj2nGryvm1BGfQ"
	link2 = "K7QX-2M9P-ABCD-EFGH-JKMN-PQRS-T"
)

func newTest(t testing.TB) *Keyring {
	t.Helper()
	k, err := New([]byte(pass), testParams)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encoded(t testing.TB, rooms map[string]string) []byte {
	t.Helper()
	k := newTest(t)
	for n, l := range rooms {
		if err := k.Add(n, l, false); err != nil {
			t.Fatal(err)
		}
	}
	data, err := k.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRoundTrip(t *testing.T) {
	data := encoded(t, map[string]string{"work": link1, "home.2": link2})
	if bytes.Contains(data, []byte("s49Vux")) || bytes.Contains(data, []byte("work")) {
		t.Fatal("the encoded keyring holds a name or a secret in clear")
	}
	if len(data) != headerLen+padTo+tagLen {
		t.Fatalf("encoded size %d, want the plaintext padded to %d", len(data), padTo)
	}
	k, err := Decode(data, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.Names(), ","); got != "home.2,work" {
		t.Fatalf("names %q", got)
	}
	if l, err := k.Link("work"); err != nil || l != link1 {
		t.Fatalf("Link(work) = %q, %v", l, err)
	}
	if _, err := k.Link("nope"); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("Link(nope): %v", err)
	}
	// Encoding again keeps the salt (no new derivation) but not the nonce.
	again, err := k.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again[:headerLen-nonceLen], data[:headerLen-nonceLen]) || bytes.Equal(again[headerLen-nonceLen:headerLen], data[headerLen-nonceLen:headerLen]) {
		t.Fatal("re-encoding should keep the header but draw a new nonce")
	}
	if err := k.Remove("work"); err != nil {
		t.Fatal(err)
	}
	if err := k.Remove("work"); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestRekey(t *testing.T) {
	data := encoded(t, map[string]string{"work": link1})
	k, err := Decode(data, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Rekey([]byte("short"), testParams); err == nil {
		t.Fatal("Rekey to a 5-character passphrase accepted")
	}
	if err := k.Rekey([]byte("another passphrase"), Params{LogN: 11, R: 8, P: 1}); err != nil {
		t.Fatal(err)
	}
	again, err := k.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again[13:29], data[13:29]) || again[10] != 11 {
		t.Fatal("Rekey kept the salt or the parameters")
	}
	if _, err := Decode(again, []byte(pass)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the old passphrase after Rekey: %v", err)
	}
	k2, err := Decode(again, []byte("another passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := k2.Link("work"); l != link1 {
		t.Fatalf("after Rekey: %q", l)
	}
}

func TestAddRules(t *testing.T) {
	k := newTest(t)
	for _, bad := range []string{"", ".x", "-x", "a b", "a/b", "é", strings.Repeat("a", MaxNameLen+1)} {
		if err := k.Add(bad, link1, false); err == nil {
			t.Errorf("Add(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "a b", "x\n", "http://x/#\x00", strings.Repeat("a", MaxLinkLen+1)} {
		if err := k.Add("ok", bad, false); err == nil {
			t.Errorf("Add(link %q) accepted", bad)
		} else if strings.Contains(err.Error(), "http") {
			t.Errorf("the error quotes the link: %v", err)
		}
	}
	if err := k.Add("a", link1, false); err != nil {
		t.Fatal(err)
	}
	if err := k.Add("a", link2, false); !errors.Is(err, ErrExists) {
		t.Fatalf("Add over an existing name: %v", err)
	}
	if err := k.Add("a", link2, true); err != nil {
		t.Fatal(err)
	}
	for i := k.Len(); i < MaxEntries; i++ {
		if err := k.Add(fmt.Sprintf("r%d", i), link1, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Add("onemore", link1, false); err == nil {
		t.Fatal("a room beyond MaxEntries accepted")
	}
	data, err := k.Encode()
	if err != nil {
		t.Fatalf("a full keyring does not encode: %v", err)
	}
	t.Logf("a keyring of %d rooms: %d bytes", k.Len(), len(data))
	if _, err := New([]byte("short"), testParams); err == nil {
		t.Fatal("a 5-character passphrase accepted for a new keyring")
	}
}

func TestWrongPassphrase(t *testing.T) {
	data := encoded(t, map[string]string{"work": link1})
	for _, p := range []string{"", "correct horse batterz", pass + " "} {
		_, err := Decode(data, []byte(p))
		if !errors.Is(err, ErrWrongPassphrase) || err.Error() != "wrong passphrase or damaged keyring" {
			t.Errorf("passphrase %q: %v", p, err)
		}
	}
}

// TestTampered flips one bit in each class of position — magic, version,
// KDF id, each KDF parameter, salt, nonce, ciphertext, tag — and cuts the
// file at each class boundary: every one is an error, none a keyring.
func TestTampered(t *testing.T) {
	data := encoded(t, map[string]string{"work": link1})
	positions := map[string]int{
		"magic": 0, "version": 8, "kdf": 9, "logN": 10, "r": 11, "p": 12,
		"salt": 13, "salt end": 28, "nonce": 29, "nonce end": 40,
		"ciphertext": 41, "ciphertext mid": 41 + padTo/2, "tag": len(data) - tagLen, "last byte": len(data) - 1,
	}
	for name, i := range positions {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= bit
			if k, err := Decode(bad, []byte(pass)); err == nil {
				t.Errorf("%s (byte %d ^ %#x): decoded %v", name, i, bit, k.Names())
			}
		}
	}
	for _, n := range []int{0, 1, 7, 8, 9, 13, headerLen - 1, headerLen, headerLen + tagLen - 1, headerLen + tagLen, len(data) - 1} {
		if _, err := Decode(data[:n], []byte(pass)); err == nil {
			t.Errorf("cut at %d bytes: decoded", n)
		}
	}
	if _, err := Decode(append(bytes.Clone(data), 0), []byte(pass)); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("a byte appended: %v", err)
	}
	if _, err := Decode(make([]byte, MaxFileSize+1), []byte(pass)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}

func TestVersionAndParams(t *testing.T) {
	data := encoded(t, nil)
	set := func(i int, v byte) []byte { b := bytes.Clone(data); b[i] = v; return b }
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"version 2", set(8, 2), ErrVersion},
		{"version 0", set(8, 0), ErrVersion},
		{"kdf 2", set(9, 2), ErrVersion},
		{"logN 9", set(10, 9), ErrParams},
		{"logN 21", set(10, 21), ErrParams},
		{"r 0", set(11, 0), ErrParams},
		{"r 33", set(11, 33), ErrParams},
		{"p 0", set(12, 0), ErrParams},
		{"p 17", set(12, 17), ErrParams},
		{"not a keyring", []byte("http://127.0.0.1:8080/#s49Vux9hnj2nGryvm1BGfQ and more text to be long enough"), ErrNotKeyring},
	} {
		if _, err := Decode(tc.data, []byte(pass)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := (Params{LogN: 20, R: 8, P: 1}).check(); err != nil {
		t.Errorf("2^20, 8, 1 refused: %v", err)
	}
	if err := (Params{LogN: 20, R: 8, P: 3}).check(); err == nil {
		t.Error("2^20, 8, 3 (work 3·2^23) accepted")
	}
	if err := (Params{LogN: 20, R: 9, P: 1}).check(); err == nil {
		t.Error("2^20, 9, 1 (over 1 GiB) accepted")
	}
	if err := DefaultParams.check(); err != nil {
		t.Errorf("DefaultParams refused: %v", err)
	}
}

// TestContentsChecked: authenticated contents are still checked (a
// keyring written by a buggy or other build): names, links, duplicates,
// count, unknown fields, trailing data.
func TestContentsChecked(t *testing.T) {
	k := newTest(t)
	for _, tc := range []struct{ name, plain string }{
		{"bad name", `{"rooms":[{"name":"a b","link":"x"}]}`},
		{"bad link", `{"rooms":[{"name":"a","link":"x y"}]}`},
		{"empty link", `{"rooms":[{"name":"a","link":""}]}`},
		{"twice", `{"rooms":[{"name":"a","link":"x"},{"name":"a","link":"y"}]}`},
		{"unknown field", `{"rooms":[],"x":1}`},
		{"trailing", `{"rooms":[]} {}`},
		{"not json", `rooms`},
		{"too many", `{"rooms":[` + strings.Repeat(`{"name":"a","link":"x"},`, MaxEntries) + `{"name":"a","link":"x"}]}`},
	} {
		k.rooms = map[string]Entry{}
		if err := k.unmarshal([]byte(tc.plain)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	k.rooms = map[string]Entry{}
	if err := k.unmarshal([]byte(`{"rooms":[{"name":"a","link":"x","added":"2026-01-02T03:04:05Z"}]}   `)); err != nil {
		t.Fatalf("a valid payload with padding: %v", err)
	}
}

func TestLoadSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keyring")
	if _, err := Load(path, []byte(pass), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v", err)
	}
	k := newTest(t)
	if err := k.Add("work", link1, false); err != nil {
		t.Fatal(err)
	}
	old := syscallUmask(0o022)
	defer syscallUmask(old)
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("saved with mode %s, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Fatalf("directory made with mode %s, want 0700", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if _, err := Load(path, []byte("wrong passphrase"), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a failed Load changed the file")
	}
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	k2, err := Load(path, []byte(pass), warn)
	if err != nil || len(warned) != 0 {
		t.Fatalf("Load: %v, warned %q", err, warned)
	}
	if l, _ := k2.Link("work"); l != link1 {
		t.Fatalf("loaded link %q", l)
	}
	os.Chmod(path, 0o640)
	if _, err := Load(path, []byte(pass), warn); err != nil || len(warned) != 1 || !strings.Contains(warned[0], "read by other users") {
		t.Fatalf("group-readable: %v, warned %q", err, warned)
	}
	os.Chmod(path, 0o620)
	if _, err := Load(path, []byte(pass), warn); !errors.Is(err, ErrPermissions) {
		t.Fatalf("group-writable: %v", err)
	}
	// Saving again restores 0600 and leaves no temporary file behind.
	if err := k2.Save(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("re-saved with mode %s", st.Mode().Perm())
	}
	// Through a symbolic link: the file it names is replaced, the link stays.
	ln := filepath.Join(dir, "link")
	if err := os.Symlink(path, ln); err != nil {
		t.Fatal(err)
	}
	if err := k2.Save(ln); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(ln); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the symbolic link was replaced: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "keyring" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, []byte(pass), nil); !errors.Is(err, ErrNotKeyring) {
		t.Fatalf("junk: %v", err)
	}
}

// TestConcurrentWriters: writers that Lock, Load, Add and Save lose no
// room and never leave a file a reader cannot open; readers, which take
// no lock, always see a whole keyring.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring")
	if err := newTest(t).Save(path); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*writers)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := Load(path, []byte(pass), nil); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
			}
		}()
	}
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				unlock, err := Lock(path)
				if err != nil {
					errs <- err
					return
				}
				k, err := Load(path, []byte(pass), nil)
				if err == nil {
					err = k.Add(fmt.Sprintf("w%d-%d", i, j), link1, false)
				}
				if err == nil {
					err = k.Save(path)
				}
				unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	k, err := Load(path, []byte(pass), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.Len() != writers*3 {
		t.Fatalf("%d rooms after %d locked additions: %v", k.Len(), writers*3, k.Names())
	}
}

// TestDefaultCost measures one derivation with DefaultParams (the figure
// docs/SECURITY.md quotes): wall time, and CPU time, which a busy machine
// changes less. It asserts nothing on time.
func TestDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("a 128 MiB derivation")
	}
	start, cpu := time.Now(), cpuTime()
	if _, err := New([]byte(pass), DefaultParams); err != nil {
		t.Fatal(err)
	}
	t.Logf("one scrypt derivation N=2^%d r=%d p=%d: %s (CPU time %s)", DefaultParams.LogN, DefaultParams.R, DefaultParams.P,
		time.Since(start).Round(time.Millisecond), (cpuTime() - cpu).Round(time.Millisecond))
}

// FuzzOpen: Decode of untrusted bytes never panics, and what it accepts
// encodes back to a keyring with the same rooms. Inputs asking for a
// costly derivation (above the seeds' N = 2^10, r = 8) are left out:
// header() has checked them already, the rest is the KDF's time. Keys are
// kept per (parameters, salt), since most inputs keep a seed's header.
func FuzzOpen(f *testing.F) {
	f.Add(encoded(f, nil))
	f.Add(encoded(f, map[string]string{"work": link1, "home": link2}))
	f.Add([]byte(magic))
	f.Add([]byte("not a keyring at all"))
	keys := map[string]cipher.AEAD{}
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte) {
		p, salt, err := header(data)
		if err != nil || len(data) > MaxFileSize {
			if _, err := Decode(data, []byte(pass)); err == nil {
				t.Fatal("Decode accepted what header refused")
			}
			return
		}
		if p.LogN > 10 || p.R > 8 || p.P > 1 {
			return
		}
		id := string(data[len(magic) : headerLen-nonceLen])
		mu.Lock()
		aead := keys[id]
		mu.Unlock()
		if aead == nil {
			if aead, err = deriveAEAD([]byte(pass), salt, p); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if len(keys) > 256 {
				clear(keys)
			}
			keys[id] = aead
			mu.Unlock()
		}
		k, err := open(data, p, salt, aead)
		if err != nil {
			return
		}
		again, err := k.Encode()
		if err != nil {
			t.Fatalf("a decoded keyring does not encode: %v", err)
		}
		k2, err := Decode(again, []byte(pass))
		if err != nil || strings.Join(k2.Names(), ",") != strings.Join(k.Names(), ",") {
			t.Fatalf("re-encoded keyring: %v", err)
		}
	})
}

// FuzzContents reaches the contents' checks, which the AEAD keeps random
// bytes away from in FuzzOpen.
func FuzzContents(f *testing.F) {
	f.Add([]byte(`{"rooms":[{"name":"a","link":"x","added":"2026-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"rooms":[]}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		k := &Keyring{rooms: map[string]Entry{}}
		if err := k.unmarshal(plain); err != nil {
			return
		}
		for _, n := range k.Names() {
			if ValidName(n) != nil {
				t.Fatalf("accepted name %q", n)
			}
			if l, _ := k.Link(n); validLink(l) != nil {
				t.Fatalf("accepted link %q", l)
			}
		}
	})
}
