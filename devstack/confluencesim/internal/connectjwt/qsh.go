// Package connectjwt is the Confluence simulator's own implementation of
// Atlassian Connect JWTs and of the query string hash (qsh).
//
// It is written independently of cloud-app's implementation and is checked
// against npm atlassian-jwt 2.0.3 (interop/ajwt_*.mjs), so that one mistake
// cannot hide in both the app and the simulator that tests it. It is
// internal: nothing outside the simulator may import it.
package connectjwt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ContextQSH is the fixed qsh claim of context tokens (AP.context.getToken).
const ContextQSH = "context-qsh"

// maxParams mirrors Node's querystring limit of 1,000 pairs; a longer query
// is refused rather than silently truncated.
const maxParams = 1000

// ErrQuery is returned for a query string that does not parse cleanly: a bad
// percent escape, invalid UTF-8 after decoding, or too many parameters.
var ErrQuery = errors.New("connectjwt: malformed query string")

// CanonicalRequest returns the canonical request string
// METHOD&PATH&QUERY that the qsh claim hashes.
//
// rawPath is the request path exactly as sent (still percent-encoded);
// rawQuery is the query exactly as sent, without the leading '?'. basePath
// is the context path to strip (for example "/wiki" for Confluence, or the
// path of an app's baseUrl); it is removed as a plain string prefix, as
// atlassian-jwt does.
func CanonicalRequest(method, rawPath, rawQuery, basePath string) (string, error) {
	q, err := canonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	return strings.ToUpper(method) + "&" + canonicalPath(rawPath, basePath) + "&" + q, nil
}

// CanonicalURL is CanonicalRequest for an absolute or origin-relative URL
// and a base URL (whose path is the context path to strip).
func CanonicalURL(method, rawURL, baseURL string) (string, error) {
	path, query := SplitURL(rawURL)
	basePath, _ := SplitURL(baseURL)
	return CanonicalRequest(method, path, query, basePath)
}

// Hash returns the qsh of a canonical request: lower-case hex SHA-256.
func Hash(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:])
}

// QSH returns the qsh of a request, as CanonicalRequest describes it.
func QSH(method, rawPath, rawQuery, basePath string) (string, error) {
	c, err := CanonicalRequest(method, rawPath, rawQuery, basePath)
	if err != nil {
		return "", err
	}
	return Hash(c), nil
}

// SplitURL returns the raw path and raw query of a URL without decoding
// anything. The scheme and authority, if present, and any fragment are
// dropped.
func SplitURL(rawURL string) (path, query string) {
	s := rawURL
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "://"); i >= 0 && !strings.ContainsAny(s[:i], "/?") {
		rest := s[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "", ""
		}
		s = rest[j:]
	}
	path, query, _ = strings.Cut(s, "?")
	return path, query
}

func canonicalPath(rawPath, basePath string) string {
	p := strings.TrimPrefix(rawPath, basePath)
	if p == "" {
		return "/"
	}
	// An unencoded '&' in the path would let two different requests share a
	// canonical string, so it is encoded.
	p = strings.ReplaceAll(p, "&", "%26")
	if p[0] != '/' {
		p = "/" + p
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

func canonicalQuery(rawQuery string) (string, error) {
	params, err := ParseQuery(rawQuery)
	if err != nil {
		return "", err
	}
	delete(params, "jwt")
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	slices.SortFunc(names, CompareUTF16)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(Encode(n))
		b.WriteByte('=')
		values := slices.Clone(params[n])
		slices.SortFunc(values, CompareUTF16)
		for j, v := range values {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(Encode(v))
		}
	}
	return b.String(), nil
}

// ParseQuery decodes a raw query string the way Node's querystring does
// ('+' is a space, a pair without '=' has an empty value, empty pairs are
// skipped), but strictly: a bad percent escape or invalid UTF-8 is an error
// instead of being passed through or replaced.
func ParseQuery(rawQuery string) (map[string][]string, error) {
	params := make(map[string][]string)
	n := 0
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		n++
		if n > maxParams {
			return nil, fmt.Errorf("%w: more than %d parameters", ErrQuery, maxParams)
		}
		name, value, _ := strings.Cut(pair, "=")
		dn, err := decodeComponent(name)
		if err != nil {
			return nil, err
		}
		dv, err := decodeComponent(value)
		if err != nil {
			return nil, err
		}
		params[dn] = append(params[dn], dv)
	}
	return params, nil
}

func decodeComponent(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("%w: invalid UTF-8", ErrQuery)
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("%w: truncated percent escape", ErrQuery)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%w: bad percent escape", ErrQuery)
			}
			b = append(b, hi<<4|lo)
			i += 2
		default:
			b = append(b, c)
		}
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: invalid UTF-8", ErrQuery)
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Encode percent-encodes s as RFC 3986 with upper-case hex, leaving only
// A-Z a-z 0-9 - . _ ~ unescaped (a space is %20, never '+').
func Encode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// CompareUTF16 orders strings by their UTF-16 code units, as JavaScript's
// and Java's default string sorts do. It differs from Go's byte order (code
// point order) only when a character above U+FFFF meets one in
// U+E000..U+FFFF.
func CompareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return cmpUnit(firstUnit(ra), firstUnit(rb), ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	default:
		return 1
	}
}

// firstUnit is the first UTF-16 code unit of r.
func firstUnit(r rune) rune {
	if r > 0xFFFF {
		return 0xD800 + (r-0x10000)>>10
	}
	return r
}

func cmpUnit(ua, ub, ra, rb rune) int {
	if ua != ub {
		if ua < ub {
			return -1
		}
		return 1
	}
	// Both are supplementary characters with the same high surrogate; the
	// low surrogates then order as the code points do.
	if ra < rb {
		return -1
	}
	return 1
}
