package crypto

import (
	"fmt"
	"strings"
	"unicode"
)

// Mini code: the 128 secret bits, most significant first, followed by two
// zero pad bits (130 bits), as 26 Crockford base32 symbols, then one check
// symbol computed with the Luhn mod N algorithm (N = 32) over the 26 symbol
// values. 27 symbols, printed upper case in groups of 4 joined by '-'
// (the last group has 3).
const (
	crockford     = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	miniData      = 26 // data symbols
	miniLen       = miniData + 1
	miniGroup     = 4
	miniPadBits   = miniData*5 - SecretLen*8 // 2
	miniFormatMsg = "a mini code of 27 characters like XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX"
)

// crockfordValue maps an upper-case input byte to its symbol value, or -1.
// O is read as 0 and I, L as 1; U is not a symbol.
var crockfordValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] = int8(i)
	}
	t['O'] = 0
	t['I'] = 1
	t['L'] = 1
	return t
}()

// luhnCheck returns the Luhn mod 32 check value for data symbol values.
func luhnCheck(vals []int) int {
	const n = len(crockford)
	factor, sum := 2, 0
	for i := len(vals) - 1; i >= 0; i-- {
		a := factor * vals[i]
		sum += a/n + a%n
		factor = 3 - factor
	}
	return (n - sum%n) % n
}

// bit returns bit i (0 = most significant) of b, 0 past its end.
func bit(b []byte, i int) int {
	if i/8 >= len(b) {
		return 0
	}
	return int(b[i/8]>>(7-i%8)) & 1
}

func (s Secret) miniCode() string {
	vals := make([]int, miniData)
	for i := range vals {
		v := 0
		for j := 0; j < 5; j++ {
			v = v<<1 | bit(s[:], 5*i+j)
		}
		vals[i] = v
	}
	vals = append(vals, luhnCheck(vals))
	var sb strings.Builder
	for i, v := range vals {
		if i > 0 && i%miniGroup == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(crockford[v])
	}
	return sb.String()
}

func parseMiniCode(in string) (Secret, error) {
	vals := make([]int, 0, miniLen)
	n := 0 // symbols seen, for the error message
	for _, r := range in {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		n++
		v := -1
		if r < 128 {
			v = int(crockfordValue[unicode.ToUpper(r)])
		}
		if v < 0 {
			// Do not echo the character: the input is (almost) a secret.
			return Secret{}, badSecret("character %d is not a mini code character (%s; letters I, L, O, U are not used)", n, miniFormatMsg)
		}
		vals = append(vals, v)
	}
	if len(vals) != miniLen {
		return Secret{}, badSecret("got %d characters; expected a room link, a 22-character fragment, or %s", len(vals), miniFormatMsg)
	}
	if luhnCheck(vals[:miniData]) != vals[miniData] {
		return Secret{}, fmt.Errorf("%w; re-check each character (%s)", ErrTypo, miniFormatMsg)
	}
	if vals[miniData-1]&(1<<miniPadBits-1) != 0 {
		return Secret{}, fmt.Errorf("%w: the 26th character cannot occur in a valid code; re-check it", ErrTypo)
	}
	var s Secret
	for i := 0; i < SecretLen*8; i++ {
		if (vals[i/5]>>(4-i%5))&1 == 1 {
			s[i/8] |= 1 << (7 - i%8)
		}
	}
	return s, nil
}
