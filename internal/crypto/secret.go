package crypto

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// fragmentLen is the length of a secret's URL-fragment form.
const fragmentLen = 22

var b64 = base64.RawURLEncoding.Strict()

func newSecret() (Secret, error) {
	var s Secret
	if _, err := rand.Read(s[:]); err != nil {
		return Secret{}, fmt.Errorf("crypto: random secret: %w", err)
	}
	return s, nil
}

func (s Secret) fragment() string { return b64.EncodeToString(s[:]) }

func (s Secret) link(base string) string {
	return strings.TrimRight(base, "/") + "/#" + s.fragment()
}

// errors of ParseInvite never quote the input: it may be a (mistyped) secret.
func badSecret(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSecret}, a...)...)
}

func parseInvite(input string) (string, Secret, error) {
	in := strings.TrimSpace(input)
	if in == "" {
		return "", Secret{}, badSecret("empty input; expected a room link (https://host/#…), its 22-character fragment or a 27-character mini code")
	}
	if strings.Contains(in, "://") {
		return parseLink(in)
	}
	s, err := parseSecretText(strings.TrimPrefix(in, "#"))
	return "", s, err
}

func parseLink(in string) (string, Secret, error) {
	u, err := url.Parse(in)
	if err != nil {
		return "", Secret{}, badSecret("link is not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", Secret{}, badSecret("link must start with https:// (or http://), not %s://", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", Secret{}, badSecret("link has no host")
	}
	if u.Fragment == "" {
		return "", Secret{}, badSecret("link has no room secret after '#' (was the link cut short?)")
	}
	s, err := parseSecretText(u.Fragment)
	if err != nil {
		return "", Secret{}, fmt.Errorf("link fragment: %w", err)
	}
	return u.Scheme + "://" + u.Host, s, nil
}

// parseSecretText accepts a fragment or a mini code.
func parseSecretText(t string) (Secret, error) {
	t = strings.TrimSpace(t)
	if len(t) == fragmentLen {
		if b, err := b64.DecodeString(t); err == nil && len(b) == SecretLen {
			var s Secret
			copy(s[:], b)
			return s, nil
		}
	}
	return parseMiniCode(t)
}
