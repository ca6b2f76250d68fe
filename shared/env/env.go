// Package env reads typed configuration from environment variables. A
// Reader records the first bad value; its error names the variable in one
// line and never repeats a secret's value.
package env

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables through a lookup function (os.LookupEnv in main,
// a map in tests) and keeps the first error.
type Reader struct {
	lookup func(string) (string, bool)
	err    error
}

// New returns a Reader over lookup.
func New(lookup func(string) (string, bool)) *Reader { return &Reader{lookup: lookup} }

// FromMap is a lookup function over a map, for tests.
func FromMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Err returns the first error recorded.
func (r *Reader) Err() error { return r.err }

// Fail records an error about name (only the first one is kept).
func (r *Reader) Fail(name, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("invalid %s: %s", name, fmt.Sprintf(format, args...))
	}
}

// String returns the variable's value with surrounding spaces removed, or
// def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def
	}
	return v
}

// Enum returns the variable's value, which must be one of allowed.
func (r *Reader) Enum(name, def string, allowed ...string) string {
	v := r.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.Fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Addr returns a listen address such as ":8081" or "127.0.0.1:8081".
func (r *Reader) Addr(name, def string) string {
	v := r.String(name, def)
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		r.Fail(name, "%q is not host:port (%v)", v, err)
		return def
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.Fail(name, "%q has no valid port (0 to 65535)", v)
		return def
	}
	return v
}

// OneLine is err's message on one line (some drivers' messages span
// several, one per address tried), with repeated lines dropped: start-up
// errors are one line naming the variable.
func OneLine(err error) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// URL returns an absolute http(s) URL without query, fragment or user info
// and without a trailing slash. An empty value gives nil.
func (r *Reader) URL(name, def string) *url.URL {
	v := r.String(name, def)
	if v == "" {
		return nil
	}
	u, err := ParseBaseURL(v)
	if err != nil {
		r.Fail(name, "%v", err)
		return nil
	}
	return u
}

// ParseBaseURL parses an absolute http(s) base URL: no query, fragment or
// user info; a trailing slash is removed.
func ParseBaseURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", v)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q must start with https:// (or http:// for a loopback address)", v)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%q must be a plain base URL (scheme, host, optional port and path)", v)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// IsLoopback reports whether u's host is localhost, 127.0.0.1 (any of
// 127/8) or ::1 — the only hosts allowed plain http ("dev mode").
func IsLoopback(u *url.URL) bool {
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// URLList returns a comma-separated list of base URLs.
func (r *Reader) URLList(name, def string) []*url.URL {
	v := r.String(name, def)
	var out []*url.URL
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := ParseBaseURL(part)
		if err != nil {
			r.Fail(name, "%v", err)
			return nil
		}
		out = append(out, u)
	}
	return out
}

// List returns a comma-separated list of non-empty strings.
func (r *Reader) List(name, def string) []string {
	var out []string
	for _, part := range strings.Split(r.String(name, def), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// CIDRs returns a comma-separated list of networks; a bare IP is a /32 or
// /128.
func (r *Reader) CIDRs(name, def string) []*net.IPNet {
	var out []*net.IPNet
	for _, part := range r.List(name, def) {
		if !strings.Contains(part, "/") {
			ip := net.ParseIP(part)
			if ip == nil {
				r.Fail(name, "%q is not an IP address or CIDR", part)
				return nil
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			r.Fail(name, "%q is not a CIDR", part)
			return nil
		}
		out = append(out, n)
	}
	return out
}

// Duration returns a Go duration such as "30s".
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.Fail(name, "%q is not a duration such as 30s or 5m", v)
		return def
	}
	return d
}
