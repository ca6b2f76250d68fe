// Package connect is cloud-app's Atlassian Connect layer: the canonical
// request and query string hash (qsh), Connect JWTs, the signed-install key
// service, lifecycle callback verification, the Echo middleware that
// authenticates page loads and iframe API calls, the outbound Confluence
// REST client, and the app descriptor (DESIGN section 6).
package connect

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"
)

// ContextQSH is the fixed qsh claim of context tokens (from
// AP.context.getToken) under the "context-qsh" API migration.
const ContextQSH = "context-qsh"

// maxQueryParams bounds the parameters of a query we canonicalise. Node's
// querystring stops at 1,000 keys; we refuse instead of truncating.
const maxQueryParams = 1000

// ErrBadQuery means a query string does not parse cleanly (a malformed
// percent escape, bytes that are not UTF-8 once decoded, or too many
// parameters). A request with such a query fails verification.
var ErrBadQuery = errors.New("connect: the query string does not parse cleanly")

// CanonicalRequest returns Atlassian's canonical request for qsh:
// METHOD&PATH&QUERY (DESIGN section 6).
//
// rawPath is the path exactly as sent (still percent-encoded) and rawQuery
// the query without its "?". basePath is the path of the base URL the
// request is relative to: our own base URL's path for requests to us, the
// tenant's "/wiki" for requests to Confluence. It is stripped when the path
// starts with it at a segment boundary ("/wiki" or "/wiki/..."); the path
// is otherwise used as is. (npm atlassian-jwt strips any string prefix, so
// "/wikifoo" would become "/foo" there; no request we sign or verify has
// such a path.)
//
// PATH is never decoded: "&" becomes "%26", one trailing "/" is removed and
// an empty path is "/". QUERY drops "jwt", decodes every name and value
// ("+" is a space), sorts names and, within a name, values (both in UTF-16
// code unit order, as Java and JavaScript compare strings), joins repeated
// values with a bare "," and encodes with RFC 3986 (only A-Z a-z 0-9 - . _ ~
// unescaped; space is %20). The error is ErrBadQuery.
func CanonicalRequest(method, rawPath, rawQuery, basePath string) (string, error) {
	params, err := parseQuery(rawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(method) + len(rawPath) + len(rawQuery) + 16)
	writeUpperASCII(&b, method)
	b.WriteByte('&')
	writeCanonicalPath(&b, rawPath, basePath)
	b.WriteByte('&')
	writeCanonicalQuery(&b, params)
	return b.String(), nil
}

// QSH returns the query string hash of a canonical request: the lower-case
// hex SHA-256 of its UTF-8 bytes.
func QSH(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:])
}

// RequestQSH returns the qsh of a request; see CanonicalRequest.
func RequestQSH(method, rawPath, rawQuery, basePath string) (string, error) {
	c, err := CanonicalRequest(method, rawPath, rawQuery, basePath)
	if err != nil {
		return "", err
	}
	return QSH(c), nil
}

func writeUpperASCII(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
}

// stripBasePath removes basePath from the front of p at a segment boundary.
func stripBasePath(p, basePath string) string {
	basePath = strings.TrimSuffix(basePath, "/")
	if basePath == "" {
		return p
	}
	if p == basePath {
		return ""
	}
	if strings.HasPrefix(p, basePath) && p[len(basePath)] == '/' {
		return p[len(basePath):]
	}
	return p
}

func writeCanonicalPath(b *strings.Builder, rawPath, basePath string) {
	p := stripBasePath(rawPath, basePath)
	if p == "" {
		b.WriteByte('/')
		return
	}
	// In atlassian-jwt's order: "&" becomes "%26", a missing leading "/" is
	// added, then one trailing "/" goes unless the path is just "/".
	n := len(p)
	if p[0] != '/' {
		b.WriteByte('/')
		n++
	}
	if n > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '&' {
			b.WriteString("%26")
		} else {
			b.WriteByte(p[i])
		}
	}
}

type param struct{ name, value string }

// parseQuery splits a raw query into decoded name/value pairs, dropping
// empty segments and the "jwt" parameter, as Node's querystring does.
func parseQuery(raw string) ([]param, error) {
	if raw == "" {
		return nil, nil
	}
	n := strings.Count(raw, "&") + 1
	if n > maxQueryParams {
		return nil, ErrBadQuery
	}
	params := make([]param, 0, n)
	for raw != "" {
		var seg string
		seg, raw, _ = strings.Cut(raw, "&")
		if seg == "" {
			continue
		}
		rn, rv, _ := strings.Cut(seg, "=")
		name, err := unescape(rn)
		if err != nil {
			return nil, err
		}
		if name == "jwt" {
			continue
		}
		value, err := unescape(rv)
		if err != nil {
			return nil, err
		}
		params = append(params, param{name, value})
	}
	return params, nil
}

// unescape decodes a query component: "+" is a space and %XX a byte. The
// result must be UTF-8.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		if !utf8.ValidString(s) {
			return "", ErrBadQuery
		}
		return s, nil
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			buf = append(buf, ' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", ErrBadQuery
			}
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			buf = append(buf, c)
		}
	}
	if !utf8.Valid(buf) {
		return "", ErrBadQuery
	}
	return string(buf), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func writeCanonicalQuery(b *strings.Builder, params []param) {
	if len(params) == 0 {
		return
	}
	slices.SortFunc(params, func(a, b param) int {
		if c := compareUTF16(a.name, b.name); c != 0 {
			return c
		}
		return compareUTF16(a.value, b.value)
	})
	for i, p := range params {
		if i > 0 && params[i-1].name == p.name {
			b.WriteByte(',')
		} else {
			if i > 0 {
				b.WriteByte('&')
			}
			writeRFC3986(b, p.name)
			b.WriteByte('=')
		}
		writeRFC3986(b, p.value)
	}
}

// compareUTF16 orders valid UTF-8 strings by their UTF-16 code units, the
// order of Java's String.compareTo and JavaScript's default sort. It
// differs from byte order only when a character above U+FFFF meets one in
// U+E000–U+FFFF.
func compareUTF16(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) - len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return int(a[i]) - int(b[i])
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRuneInString(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	if ka, kb := utf16Lead(ra), utf16Lead(rb); ka != kb {
		return int(ka - kb)
	}
	return int(ra - rb)
}

// lessUTF16 reports whether a sorts before b in UTF-16 code unit order.
func lessUTF16(a, b string) bool { return compareUTF16(a, b) < 0 }

// utf16Lead is the first UTF-16 code unit of r.
func utf16Lead(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + (r-0x10000)>>10
	}
	return r
}

const upperHex = "0123456789ABCDEF"

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// writeRFC3986 percent-encodes s with upper-case hex, leaving only the
// unreserved characters.
func writeRFC3986(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
}

// EncodeQueryComponent percent-encodes s the way the canonical request
// does (RFC 3986, space as %20). Queries built with it hash to the same
// values they are sent with.
func EncodeQueryComponent(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	writeRFC3986(&b, s)
	return b.String()
}
