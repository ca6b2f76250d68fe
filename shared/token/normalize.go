package token

import (
	"strconv"
)

// compact is a token in canonical form: five base64url segments joined by
// dots, nothing else.
type compact struct {
	b   []byte
	dot [4]int // positions of the four dots in b
}

// seg returns segment i (0 to 4): header, encrypted key, IV, ciphertext, tag.
func (c *compact) seg(i int) []byte {
	start, end := 0, len(c.b)
	if i > 0 {
		start = c.dot[i-1] + 1
	}
	if i < 4 {
		end = c.dot[i]
	}
	return c.b[start:end]
}

// Normalize returns the token held in raw in canonical form, or a refusal.
// It is the first step of both readers and checks only the outer form:
//
//   - raw may be at most MaxUploadSize bytes (payload_too_large);
//   - a UTF-8 byte order mark and ASCII whitespace anywhere are removed, so a
//     file saved with CRLF line ends or wrapped across lines still reads;
//   - what remains must be at most MaxTokenSize bytes of exactly five
//     segments of unpadded, canonical base64url joined by dots, with a
//     non-empty header (invalid_token).
//
// A token stored or forwarded by a service should be the Normalize form.
func Normalize(raw []byte) (string, error) {
	c, err := normalize(raw)
	if err != nil {
		return "", err
	}
	return string(c.b), nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// normalize is Normalize without the copy: the result points into raw when
// raw has no whitespace inside the token.
func normalize(raw []byte) (compact, error) {
	var c compact
	if len(raw) > MaxUploadSize {
		return c, errTooLarge()
	}
	if len(raw) >= 2 && (raw[0] == 0xFF && raw[1] == 0xFE || raw[0] == 0xFE && raw[1] == 0xFF) {
		return c, errInvalid("the file is saved as UTF-16 text, and a token file is plain UTF-8 text; save it as UTF-8 or use the file exactly as you received it")
	}
	if len(raw) >= 3 && raw[0] == utf8BOM[0] && raw[1] == utf8BOM[1] && raw[2] == utf8BOM[2] {
		raw = raw[3:]
	}
	start, end := 0, len(raw)
	for start < end && isSpace(raw[start]) {
		start++
	}
	for end > start && isSpace(raw[end-1]) {
		end--
	}
	raw = raw[start:end]

	// One pass checks the alphabet, finds the dots and counts whitespace.
	spaces, dots := 0, 0
	for i := 0; i < len(raw); i++ {
		// Sixteen base64url characters at a time (nearly all of a token),
		// one branch each; then one at a time up to the next other byte.
		for i+16 <= len(raw) {
			w := (*[16]byte)(raw[i : i+16])
			if notBase64[w[0]]|notBase64[w[1]]|notBase64[w[2]]|notBase64[w[3]]|
				notBase64[w[4]]|notBase64[w[5]]|notBase64[w[6]]|notBase64[w[7]]|
				notBase64[w[8]]|notBase64[w[9]]|notBase64[w[10]]|notBase64[w[11]]|
				notBase64[w[12]]|notBase64[w[13]]|notBase64[w[14]]|notBase64[w[15]] != 0 {
				break
			}
			i += 16
		}
		for i < len(raw) && charClass[raw[i]] == classBase64 {
			i++
		}
		if i == len(raw) {
			break
		}
		switch ch := raw[i]; charClass[ch] {
		case classDot:
			if dots < 4 {
				c.dot[dots] = i - spaces
			}
			dots++
		case classSpace:
			spaces++
		default:
			return c, errBadChar(ch)
		}
	}
	n := len(raw) - spaces
	switch {
	case n == 0:
		return c, errInvalid("the file is empty")
	case n > MaxTokenSize:
		return c, errInvalid("it is " + strconv.Itoa(n>>10) + " KiB long, far longer than a token")
	case dots != 4:
		return c, errInvalid("a token has five parts separated by dots, and this has " + strconv.Itoa(dots+1) + "; make sure the file holds exactly one token, complete")
	}
	if spaces == 0 {
		c.b = raw
	} else {
		c.b = make([]byte, 0, n)
		for _, ch := range raw {
			if !isSpace(ch) {
				c.b = append(c.b, ch)
			}
		}
	}
	for i := range 5 {
		if !canonicalBase64(c.seg(i)) {
			return c, errInvalid("part " + strconv.Itoa(i+1) + " of 5 is damaged (it is not valid base64url)")
		}
	}
	if len(c.seg(0)) == 0 {
		return c, errInvalid("its header is empty")
	}
	return c, nil
}

func errBadChar(ch byte) error {
	switch {
	case ch == 0:
		return errInvalid("it contains NUL bytes, so it is not a text file or is saved as UTF-16; a token file is plain UTF-8 text")
	case ch == '%':
		return errInvalid("it contains '%', which never appears in a token (was it URL-encoded?)")
	case ch >= 0x80:
		return errInvalid("it contains non-ASCII characters, which never appear in a token")
	case ch < 0x20 || ch == 0x7F:
		return errInvalid("it contains control characters, which never appear in a token")
	default:
		return errInvalid("it contains " + strconv.QuoteRune(rune(ch)) + ", which never appears in a token")
	}
}

// charClass classifies every byte value for normalize: classInvalid,
// classBase64 (A-Z a-z 0-9 - _), classDot or classSpace (ASCII
// whitespace). A table lookup per byte is the fastest scan in pure Go here;
// TestCharClass checks the table against b64Value and isSpace.
const charClass = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x03\x03\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00\x00" +
	"\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x01" +
	"\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// notBase64 is 0 for the base64url characters and 1 for every other byte
// value: the OR of sixteen lookups says whether all sixteen are base64url.
var notBase64 = func() (t [256]byte) {
	for i := range t {
		if charClass[i] != classBase64 {
			t[i] = 1
		}
	}
	return t
}()

const (
	classInvalid = iota
	classBase64
	classDot
	classSpace
)

// isSpace reports whether ch is ASCII whitespace.
func isSpace(ch byte) bool {
	return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\v' || ch == '\f'
}

// b64Value returns the value of a base64url character, or -1.
func b64Value(ch byte) int {
	switch {
	case ch >= 'A' && ch <= 'Z':
		return int(ch - 'A')
	case ch >= 'a' && ch <= 'z':
		return int(ch-'a') + 26
	case ch >= '0' && ch <= '9':
		return int(ch-'0') + 52
	case ch == '-':
		return 62
	case ch == '_':
		return 63
	}
	return -1
}

// canonicalBase64 reports whether s, already known to hold only base64url
// characters, has a length unpadded base64 can have and zero unused bits in
// its last character, so that each token has exactly one spelling.
func canonicalBase64(s []byte) bool {
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return b64Value(s[len(s)-1])&0x0F == 0
	case 3:
		return b64Value(s[len(s)-1])&0x03 == 0
	}
	return true
}

// decodedLen returns the number of bytes the canonical base64url segment s
// decodes to.
func decodedLen(s []byte) int { return len(s) * 6 / 8 }
