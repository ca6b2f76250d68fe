package token

import (
	"strings"
)

// SameBaseURL reports whether a and b name the same cloud-app base URL:
// both absolute http or https URLs without user info, query or fragment,
// with the same scheme, host (compared without case), port (an omitted
// port is the scheme's default) and path (compared exactly, except that one
// trailing slash is ignored). Anything else, such as a URL that merely
// starts with the other, is different: https://cloud.example.com is not
// https://cloud.example.com.evil, https://cloud.example.com:8443 or
// https://cloud.example.com/other.
//
// It does not allocate, so the header reader can afford it on every token.
func SameBaseURL(a, b string) bool {
	ba, ok := parseBaseURL(a)
	if !ok {
		return false
	}
	bb, ok := parseBaseURL(b)
	return ok && ba.https == bb.https && ba.port == bb.port && ba.path == bb.path && strings.EqualFold(ba.host, bb.host)
}

// baseURL is a base URL split into the parts SameBaseURL compares.
type baseURL struct {
	https bool
	host  string
	port  int
	path  string // without one trailing slash
}

// parseBaseURL splits s, refusing anything that is not a plain
// scheme://host[:port][/path] URL.
func parseBaseURL(s string) (baseURL, bool) {
	var u baseURL
	if len(s) > 2048 {
		return u, false
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch <= ' ' || ch >= 0x7F || ch == '?' || ch == '#' || ch == '\\' || ch == '@' {
			return u, false
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		return u, false
	case strings.EqualFold(scheme, "https"):
		u.https, u.port = true, 443
	case strings.EqualFold(scheme, "http"):
		u.port = 80
	default:
		return u, false
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	u.path = strings.TrimSuffix(path, "/")
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return u, false
		}
		host, port = authority[:end+1], authority[end+1:]
		if port != "" && port[0] != ':' {
			return u, false
		}
	} else if i := strings.IndexByte(authority, ':'); i >= 0 {
		host, port = authority[:i], authority[i:]
	}
	if !validHost(host) {
		return u, false
	}
	u.host = host
	if port != "" {
		p, ok := parsePort(port[1:])
		if !ok {
			return u, false
		}
		u.port = p
	}
	return u, true
}

// validHost accepts a DNS name, an IPv4 address or a bracketed IPv6
// address, by character set only.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if h[0] == '[' {
		if len(h) < 3 || h[len(h)-1] != ']' {
			return false
		}
		for i := 1; i < len(h)-1; i++ {
			if ch := h[i]; !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == ':' || ch == '.') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(h); i++ {
		if ch := h[i]; !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}

// parsePort parses 1 to 5 decimal digits with a value from 1 to 65535.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	p := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		p = p*10 + int(s[i]-'0')
	}
	return p, p >= 1 && p <= 65535
}
