package sendgridsim

import "strings"

// maxAddressLen is SendGrid's limit on a whole address: local part, "@"
// and domain.
const maxAddressLen = 320

// validAddress reports whether s is a plain addr-spec SendGrid would accept:
// exactly one "@", a dot-atom local part of at most 64 ASCII characters, and
// a domain of at least two DNS labels whose top-level label is not numeric.
// Display names, quoted local parts, comments, IP literals, whitespace and
// control characters (CR/LF above all) are refused.
func validAddress(s string) bool {
	if len(s) > maxAddressLen || strings.Count(s, "@") != 1 {
		return false
	}
	at := strings.IndexByte(s, '@')
	return validLocalPart(s[:at]) && validDomain(s[at+1:])
}

// validLocalPart checks an RFC 5322 dot-atom of at most 64 characters.
func validLocalPart(local string) bool {
	if local == "" || len(local) > 64 {
		return false
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" { // leading, trailing or doubled dot
			return false
		}
		for i := 0; i < len(atom); i++ {
			if !isAtext(atom[i]) {
				return false
			}
		}
	}
	return true
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain checks a DNS host name of two or more labels (LDH rule, 1–63
// characters each, 253 in all) whose last label is not all digits.
func validDomain(domain string) bool {
	if len(domain) == 0 || len(domain) > 253 {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// hasCRLF reports whether s contains a carriage return or a line feed, the
// characters that would let a value inject mail headers.
func hasCRLF(s string) bool { return strings.ContainsAny(s, "\r\n") }
