// Package keyring keeps named room links in one file encrypted with a
// passphrase, so the CLI can join a room by a name (`key:NAME`) without the
// room's secret on the command line, in the shell history or in a plain
// file.
//
// File layout (docs/SECURITY.md "CLI keyring"), one byte per number:
//
//	0   8  magic "CLKRING\x00"
//	8   1  version (1)
//	9   1  KDF (1: scrypt)
//	10  1  log2 N
//	11  1  r
//	12  1  p
//	13  16 salt
//	29  12 nonce
//	41  …  AES-256-GCM ciphertext and 16-byte tag
//
// The key is scrypt(passphrase, salt, N, r, p, 32). The 41-byte header is
// the additional data of the AEAD, so a changed byte anywhere fails the one
// check, which cannot tell a wrong passphrase from a damaged file. The
// plaintext is JSON ({"rooms":[{"name","link","added"}]}) padded with
// spaces to a multiple of 512 bytes, so the size says little about the
// number of rooms. The salt stays for the life of the file (one
// derivation per command); every write draws a fresh random nonce.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/scrypt"
)

// Bounds on what a keyring may hold; a file beyond them is refused.
const (
	MaxFileSize   = 1 << 20 // bytes of the whole file
	MaxEntries    = 1000    // rooms
	MaxNameLen    = 64      // bytes of a name
	MaxLinkLen    = 2048    // bytes of a link
	MinPassphrase = 8       // bytes of a new keyring's passphrase
)

const (
	magic     = "CLKRING\x00"
	version   = 1
	kdfScrypt = 1
	saltLen   = 16
	nonceLen  = 12
	headerLen = len(magic) + 5 + saltLen + nonceLen
	tagLen    = 16
	padTo     = 512
	keyLen    = 32
)

var (
	// ErrWrongPassphrase: the AEAD check failed. A wrong passphrase and a
	// changed byte look the same, by design.
	ErrWrongPassphrase = errors.New("wrong passphrase or damaged keyring")
	// ErrNotKeyring: the file does not start like a keyring.
	ErrNotKeyring = errors.New("not a cloakroom keyring")
	// ErrVersion: a keyring of a version (or KDF) this build does not know.
	ErrVersion = errors.New("keyring version not supported")
	// ErrParams: KDF parameters outside what this build accepts.
	ErrParams = errors.New("keyring KDF parameters out of range")
	// ErrTooLarge: beyond MaxFileSize.
	ErrTooLarge = errors.New("keyring file too large")
	// ErrNoEntry: no room of that name.
	ErrNoEntry = errors.New("no room of that name in the keyring")
	// ErrExists: a room of that name is already there.
	ErrExists = errors.New("a room of that name is already in the keyring")
	// ErrPermissions: other users may write the file.
	ErrPermissions = errors.New("keyring file writable by other users")
)

// Params are scrypt's cost parameters: N = 2^LogN, r, p.
type Params struct {
	LogN, R, P uint8
}

// DefaultParams: N = 2^17, r = 8, p = 1 (128 MiB, the figure of RFC 7914's
// and x/crypto's recommendation for interactive use; docs/SECURITY.md
// gives the time measured).
var DefaultParams = Params{LogN: 17, R: 8, P: 1}

// check bounds the parameters a file may ask for: the memory scrypt takes
// (128·r·N bytes) at most 1 GiB and the work (N·r·p) at most 16 times the
// default's; at least N = 2^10 (tests use small N, nothing gains from
// asking less of an attacker who can already write the file).
func (p Params) check() error {
	if p.LogN < 10 || p.LogN > 20 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > 16 {
		return ErrParams
	}
	n := uint64(1) << p.LogN
	if 128*uint64(p.R)*n > 1<<30 || n*uint64(p.R)*uint64(p.P) > 1<<24 {
		return ErrParams
	}
	return nil
}

// Entry is one named room.
type Entry struct {
	Name  string    `json:"name"`
	Link  string    `json:"link"`
	Added time.Time `json:"added"`
}

// Keyring is a decrypted keyring: its rooms and the key it was opened
// with (kept to write it back without another derivation).
type Keyring struct {
	params Params
	salt   [saltLen]byte
	aead   cipher.AEAD
	rooms  map[string]Entry
}

// New makes an empty keyring sealed with passphrase (at least
// MinPassphrase bytes) under p.
func New(passphrase []byte, p Params) (*Keyring, error) {
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("keyring: a passphrase of at least %d characters, please", MinPassphrase)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	k := &Keyring{params: p, rooms: map[string]Entry{}}
	if _, err := rand.Read(k.salt[:]); err != nil {
		return nil, fmt.Errorf("keyring: salt: %w", err)
	}
	var err error
	if k.aead, err = deriveAEAD(passphrase, k.salt[:], p); err != nil {
		return nil, err
	}
	return k, nil
}

// Rekey seals the keyring from now on with a new passphrase (at least
// MinPassphrase bytes) under p, with a new salt; Save writes it.
func (k *Keyring) Rekey(passphrase []byte, p Params) error {
	n, err := New(passphrase, p)
	if err != nil {
		return err
	}
	k.params, k.salt, k.aead = n.params, n.salt, n.aead
	return nil
}

func deriveAEAD(passphrase, salt []byte, p Params) (cipher.AEAD, error) {
	key, err := scrypt.Key(passphrase, salt, 1<<p.LogN, int(p.R), int(p.P), keyLen)
	if err != nil {
		return nil, fmt.Errorf("keyring: scrypt: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return cipher.NewGCM(block)
}

// header parses and checks the clear header of data.
func header(data []byte) (Params, []byte, error) {
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return Params{}, nil, ErrNotKeyring
	}
	if len(data) < headerLen+tagLen {
		return Params{}, nil, fmt.Errorf("%w: truncated (%d bytes)", ErrNotKeyring, len(data))
	}
	h := data[len(magic):]
	if h[0] != version {
		return Params{}, nil, fmt.Errorf("%w: version %d (this build reads version %d)", ErrVersion, h[0], version)
	}
	if h[1] != kdfScrypt {
		return Params{}, nil, fmt.Errorf("%w: KDF %d", ErrVersion, h[1])
	}
	p := Params{LogN: h[2], R: h[3], P: h[4]}
	if err := p.check(); err != nil {
		return Params{}, nil, err
	}
	return p, h[5 : 5+saltLen], nil
}

// Decode opens an encoded keyring with passphrase. data is untrusted:
// every field is checked before use.
func Decode(data, passphrase []byte) (*Keyring, error) {
	if len(data) > MaxFileSize {
		return nil, ErrTooLarge
	}
	p, salt, err := header(data)
	if err != nil {
		return nil, err
	}
	aead, err := deriveAEAD(passphrase, salt, p)
	if err != nil {
		return nil, err
	}
	return open(data, p, salt, aead)
}

// open is Decode once the header is checked and the key derived.
func open(data []byte, p Params, salt []byte, aead cipher.AEAD) (*Keyring, error) {
	nonce := data[headerLen-nonceLen : headerLen]
	plain, err := aead.Open(nil, nonce, data[headerLen:], data[:headerLen])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	defer clear(plain)
	k := &Keyring{params: p, aead: aead, rooms: map[string]Entry{}}
	copy(k.salt[:], salt)
	if err := k.unmarshal(plain); err != nil {
		return nil, err
	}
	return k, nil
}

type payload struct {
	Rooms []Entry `json:"rooms"`
}

func (k *Keyring) unmarshal(plain []byte) error {
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	var pl payload
	if err := dec.Decode(&pl); err != nil {
		return fmt.Errorf("keyring contents: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("keyring contents: data after the rooms")
	}
	if len(pl.Rooms) > MaxEntries {
		return fmt.Errorf("keyring contents: %d rooms, at most %d", len(pl.Rooms), MaxEntries)
	}
	for _, e := range pl.Rooms {
		if err := ValidName(e.Name); err != nil {
			return fmt.Errorf("keyring contents: %w", err)
		}
		if err := validLink(e.Link); err != nil {
			return fmt.Errorf("keyring contents: room %s: %w", e.Name, err)
		}
		if _, dup := k.rooms[e.Name]; dup {
			return fmt.Errorf("keyring contents: room %s twice", e.Name)
		}
		k.rooms[e.Name] = e
	}
	return nil
}

// Encode seals the keyring under a fresh nonce.
func (k *Keyring) Encode() ([]byte, error) {
	pl := payload{Rooms: make([]Entry, 0, len(k.rooms))}
	for _, name := range k.Names() {
		pl.Rooms = append(pl.Rooms, k.rooms[name])
	}
	plain, err := json.Marshal(pl)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if n := len(plain) % padTo; n != 0 {
		plain = append(plain, bytes.Repeat([]byte{' '}, padTo-n)...)
	}
	defer clear(plain)
	out := make([]byte, headerLen, headerLen+len(plain)+tagLen)
	copy(out, magic)
	h := out[len(magic):]
	h[0], h[1], h[2], h[3], h[4] = version, kdfScrypt, k.params.LogN, k.params.R, k.params.P
	copy(h[5:], k.salt[:])
	nonce := out[headerLen-nonceLen : headerLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	out = k.aead.Seal(out, nonce, plain, out[:headerLen])
	if len(out) > MaxFileSize {
		return nil, ErrTooLarge
	}
	return out, nil
}

// ValidName: 1 to MaxNameLen bytes of letters, digits, '.', '_' and '-',
// starting with a letter or digit.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("room name: 1 to %d characters", MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return errors.New("room name: letters, digits, '.', '_' and '-', starting with a letter or digit")
		}
	}
	return nil
}

// validLink: printable ASCII without spaces, as links and mini codes are.
// (Whether it is a room link is the caller's to check: the error here
// never quotes it.)
func validLink(link string) error {
	if link == "" || len(link) > MaxLinkLen {
		return fmt.Errorf("link: 1 to %d characters", MaxLinkLen)
	}
	for i := 0; i < len(link); i++ {
		if link[i] <= ' ' || link[i] >= 0x7f {
			return errors.New("link: not printable ASCII")
		}
	}
	return nil
}

// Names returns the rooms' names, sorted.
func (k *Keyring) Names() []string {
	names := make([]string, 0, len(k.rooms))
	for n := range k.rooms {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Len is the number of rooms.
func (k *Keyring) Len() int { return len(k.rooms) }

// Link returns the link stored under name.
func (k *Keyring) Link(name string) (string, error) {
	e, ok := k.rooms[name]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrNoEntry, name)
	}
	return e.Link, nil
}

// Add stores link under name; an existing name is replaced only when
// replace is set.
func (k *Keyring) Add(name, link string, replace bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := validLink(link); err != nil {
		return err
	}
	if _, ok := k.rooms[name]; ok && !replace {
		return fmt.Errorf("%w: %q", ErrExists, name)
	}
	if _, ok := k.rooms[name]; !ok && len(k.rooms) >= MaxEntries {
		return fmt.Errorf("keyring: full (%d rooms)", MaxEntries)
	}
	k.rooms[name] = Entry{Name: name, Link: link, Added: time.Now().UTC().Truncate(time.Second)}
	return nil
}

// Remove forgets name.
func (k *Keyring) Remove(name string) error {
	if _, ok := k.rooms[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNoEntry, name)
	}
	delete(k.rooms, name)
	return nil
}

// Load reads and decodes the keyring at path. It refuses a file other
// users may write (they could put back an older copy) and calls warn (if
// not nil) when they may read it (they could then try passphrases at
// leisure). A missing file is an error satisfying errors.Is(err,
// fs.ErrNotExist).
func Load(path string, passphrase []byte, warn func(string)) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("%w: %s (mode %s): chmod 600 it", ErrPermissions, path, perm)
	} else if perm&0o044 != 0 && warn != nil {
		warn(fmt.Sprintf("keyring %s may be read by other users (mode %s): chmod 600 it", path, perm))
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("keyring %s: %w", path, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := Decode(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return k, nil
}

// Save writes the keyring to path atomically: a temporary file in the same
// directory (mode 0600), synced, renamed over path, and the directory
// synced. The directory is made (0700) if missing. A symbolic link at
// path is followed, so the file it names is replaced.
func (k *Keyring) Save(path string) error {
	data, err := k.Encode()
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename is durable once the directory is
		d.Close()
	}
	return nil
}
