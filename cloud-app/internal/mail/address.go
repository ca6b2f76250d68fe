package mail

import (
	netmail "net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// idnaProfile converts internationalised domain names to their ASCII form
// the way a resolver would (IDNA 2008 lookup rules).
var idnaProfile = idna.Lookup

// checkRecipient returns the normalised address, or a fieldError saying in
// plain words what is wrong with it.
func checkRecipient(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fieldError("Enter the recipient's email address.")
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) }):
		return "", fieldError("Enter one email address, such as name@example.com.")
	case len(s) > MaxAddressLength:
		return "", fieldError("The email address is too long.")
	}
	parsed, err := netmail.ParseAddress(s)
	// The input must be exactly one bare addr-spec: net/mail also accepts
	// "Name <a@b>", comments and quoted local parts, which a recipient
	// field has no use for and which hide what the address really is.
	if err != nil || parsed.Name != "" || parsed.Address != s {
		return "", fieldError("Enter one email address, such as name@example.com, without a name or brackets.")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if !dotAtom(local) {
		return "", fieldError("The part before @ may hold only letters, digits, dots and !#$%&'*+-/=?^_`{|}~.")
	}
	ascii, ok := asciiDomain(domain)
	if !ok {
		return "", fieldError("The part after @ is not a valid domain name.")
	}
	out := local + "@" + ascii
	if len(out) > MaxAddressLength {
		return "", fieldError("The email address is too long.")
	}
	return out, nil
}

// dotAtom reports whether local is an RFC 5322 dot-atom of ASCII atext of
// at most 64 characters (no quoted strings, no internationalised local
// parts: SendGrid accepts neither).
func dotAtom(local string) bool {
	if local == "" || len(local) > 64 {
		return false
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return false
		}
		for i := 0; i < len(atom); i++ {
			c := atom[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
				return false
			}
		}
	}
	return true
}

// asciiDomain returns domain in lower-case ASCII (IDNA A-labels for an
// internationalised name) if it is a DNS host name of two or more labels
// whose last label is not numeric; IP literals are refused.
func asciiDomain(domain string) (string, bool) {
	if domain == "" || strings.HasPrefix(domain, "[") {
		return "", false
	}
	ascii, err := idnaProfile.ToASCII(domain)
	if err != nil {
		return "", false
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > 253 {
		return "", false
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	return ascii, true
}
