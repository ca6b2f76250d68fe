package token

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"spacesync.io/shared/apperr"
)

// maxPlaintext is the largest claims JSON that can fit in MaxMintedSize
// once base64url-encoded; it lets Mint refuse before encrypting.
const maxPlaintext = MaxMintedSize / 4 * 3

// Mint encrypts c into a new token with the first key of keys.
//
// Mint sets `ver` and `aud`; a zero NotBefore becomes IssuedAt and a zero
// Expiry becomes IssuedAt + Lifetime. Times are truncated to whole seconds.
// It refuses, with validation_failed and per-field messages, what a user can
// change: a message over MaxMessageLength characters (field "message"),
// more than MaxPermissions permissions or a malformed one ("permissions"),
// an empty sync name ("name"), or claims that would make the token larger
// than MaxMintedSize ("message"). Any other problem (no keys, a missing id,
// an Expiry that is not IssuedAt + Lifetime, ...) is the caller's mistake and
// returns a plain error.
func Mint(keys *KeySet, c Claims) (string, error) {
	if keys == nil || len(keys.keys) == 0 {
		return "", internalf("mint: no token keys")
	}
	w, err := prepare(&c)
	if err != nil {
		return "", err
	}
	pt, ok := appendClaims(make([]byte, 0, claimsSizeHint(&c)), &c, w)
	if !ok {
		return "", internalf("mint: a claim is not valid UTF-8")
	}
	if len(pt) > maxPlaintext {
		return "", errTooBig()
	}
	k := keys.keys[0]
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.A256KW, Key: k.secret, KeyID: k.id},
		&jose.EncrypterOptions{ExtraHeaders: map[jose.HeaderKey]any{
			jose.HeaderType: Type,
			"iss":           c.Issuer,
			"jti":           c.ID,
			"iat":           w.iat,
			"exp":           w.exp,
			"ver":           Version,
		}})
	if err != nil {
		return "", internalf("mint: %v", err)
	}
	obj, err := enc.Encrypt(pt)
	if err != nil {
		return "", internalf("mint: %v", err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		return "", internalf("mint: %v", err)
	}
	if len(s) > MaxMintedSize {
		return "", errTooBig()
	}
	return s, nil
}

func errTooBig() error {
	return apperr.Validation(map[string]string{
		"message": fmt.Sprintf("The token would be larger than %d KiB. Shorten the message or the permission list.", MaxMintedSize>>10),
	})
}

// wireTimes are a claim set's dates as NumericDates.
type wireTimes struct{ iat, nbf, exp int64 }

// prepare fills the defaults of c and checks it for Mint.
func prepare(c *Claims) (wireTimes, error) {
	var w wireTimes
	switch c.Version {
	case 0:
		c.Version = Version
	case Version:
	default:
		return w, internalf("mint: version %d; this package mints version %d", c.Version, Version)
	}
	switch c.Audience {
	case "":
		c.Audience = Audience
	case Audience:
	default:
		return w, internalf("mint: audience %q; tokens are for %q", c.Audience, Audience)
	}
	if c.IssuedAt.IsZero() {
		return w, internalf("mint: IssuedAt is not set")
	}
	w.iat = c.IssuedAt.Unix()
	w.nbf, w.exp = w.iat, w.iat+int64(Lifetime/time.Second)
	if !c.NotBefore.IsZero() {
		w.nbf = c.NotBefore.Unix()
	}
	if !c.Expiry.IsZero() && c.Expiry.Unix() != w.exp {
		return w, internalf("mint: Expiry must be IssuedAt + %v", Lifetime)
	}
	c.IssuedAt = time.Unix(w.iat, 0).UTC()
	c.NotBefore = time.Unix(w.nbf, 0).UTC()
	c.Expiry = time.Unix(w.exp, 0).UTC()
	if field, problem := checkClaims(c, w); problem != "" {
		if field != "" {
			return w, apperr.Validation(map[string]string{field: problem})
		}
		return w, internalf("mint: %s", problem)
	}
	return w, nil
}

// checkClaims checks the content of a claim set, for Mint and after
// decryption. It returns "" if c is acceptable. Otherwise a non-empty field
// names the user-facing input at fault and problem is a sentence for that
// field; with an empty field, problem describes the caller's mistake.
func checkClaims(c *Claims, w wireTimes) (field, problem string) {
	switch {
	case checkLifetime(w.iat, w.exp) != nil:
		return "", "exp must be after iat, by at most 7 days"
	case w.nbf < w.iat || w.nbf >= w.exp:
		return "", "nbf must be at or after iat and before exp"
	case !validTokenID(c.ID):
		return "", "jti must be 16 to 64 base64url characters"
	case !validBaseURL(c.Issuer):
		return "", "iss must be an http or https base URL"
	case len(c.RedemptionSecret) != 43 || !allBase64(c.RedemptionSecret) || !canonicalBase64([]byte(c.RedemptionSecret)):
		return "", "rs must be 32 bytes, base64url"
	case c.Site.ClientKey == "" || !validBaseURL(c.Site.BaseURL) || c.Site.DisplayURL != "" && !validBaseURL(c.Site.DisplayURL):
		return "", "site needs a clientKey and http or https base URLs"
	case c.Space.ID == "" || c.Space.Key == "":
		return "", "space needs an id and a key"
	case c.Sync.ID == "":
		return "", "sync needs an id"
	case strings.TrimSpace(c.Sync.Name) == "":
		return "name", "Enter a name for the sync."
	case len(c.Sync.Permissions) > MaxPermissions:
		return "permissions", fmt.Sprintf("Choose at most %d users and groups.", MaxPermissions)
	}
	for _, p := range c.Sync.Permissions {
		if p.Type != PrincipalUser && p.Type != PrincipalGroup || p.ID == "" {
			return "permissions", "Each permission must be a user or a group with an id."
		}
	}
	if !utf8.ValidString(c.Message) {
		return "message", "The message is not valid text."
	}
	if utf8.RuneCountInString(c.Message) > MaxMessageLength {
		return "message", fmt.Sprintf("Keep the message to %d characters or fewer.", MaxMessageLength)
	}
	return "", ""
}

// validBaseURL is a cheap check that s looks like an absolute http or https
// URL with no query, fragment, user info, space or control character.
func validBaseURL(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	if rest == "" || rest[0] == '/' || len(s) > 2048 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if ch := rest[i]; ch <= ' ' || ch == 0x7F || ch == '?' || ch == '#' || ch == '@' || ch == '\\' {
			return false
		}
	}
	return true
}

// claimsSizeHint estimates the JSON size of c so appendClaims allocates once.
func claimsSizeHint(c *Claims) int {
	n := 320 + len(c.ID) + len(c.Issuer) + len(c.Site.ClientKey) + len(c.Site.BaseURL) + len(c.Site.DisplayURL) +
		len(c.Space.ID) + len(c.Space.Key) + len(c.Space.Name) + len(c.Sync.ID) + len(c.Sync.Name) +
		len(c.Message) + len(c.RedemptionSecret)
	for _, p := range c.Sync.Permissions {
		n += 32 + len(p.Type) + len(p.ID) + len(p.Name)
	}
	return n + n/8
}

// appendClaims appends the claims JSON of c to b, in a fixed member order.
// It reports false if a string is not valid UTF-8.
func appendClaims(b []byte, c *Claims, w wireTimes) ([]byte, bool) {
	ok := validUTF8(c.ID, c.Issuer, c.Audience, c.Site.ClientKey, c.Site.BaseURL, c.Site.DisplayURL,
		c.Space.ID, c.Space.Key, c.Space.Name, c.Sync.ID, c.Sync.Name, c.Message, c.RedemptionSecret)
	for _, p := range c.Sync.Permissions {
		ok = ok && validUTF8(p.Type, p.ID, p.Name)
	}
	if !ok {
		return b, false
	}
	b = append(b, `{"ver":`...)
	b = strconv.AppendInt(b, int64(c.Version), 10)
	b = appendString(append(b, `,"jti":`...), c.ID)
	b = appendString(append(b, `,"iss":`...), c.Issuer)
	b = appendString(append(b, `,"aud":`...), c.Audience)
	b = strconv.AppendInt(append(b, `,"iat":`...), w.iat, 10)
	b = strconv.AppendInt(append(b, `,"nbf":`...), w.nbf, 10)
	b = strconv.AppendInt(append(b, `,"exp":`...), w.exp, 10)
	b = appendString(append(b, `,"site":{"clientKey":`...), c.Site.ClientKey)
	b = appendString(append(b, `,"baseUrl":`...), c.Site.BaseURL)
	b = appendString(append(b, `,"displayUrl":`...), c.Site.DisplayURL)
	b = appendString(append(b, `},"space":{"id":`...), c.Space.ID)
	b = appendString(append(b, `,"key":`...), c.Space.Key)
	b = appendString(append(b, `,"name":`...), c.Space.Name)
	b = appendString(append(b, `},"sync":{"id":`...), c.Sync.ID)
	b = appendString(append(b, `,"name":`...), c.Sync.Name)
	b = append(b, `,"permissions":[`...)
	for i, p := range c.Sync.Permissions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(append(b, `{"type":`...), p.Type)
		b = appendString(append(b, `,"id":`...), p.ID)
		b = appendString(append(b, `,"name":`...), p.Name)
		b = append(b, '}')
	}
	b = strconv.AppendBool(append(b, `],"comments":`...), c.Sync.Comments)
	b = strconv.AppendBool(append(b, `,"labels":`...), c.Sync.Labels)
	b = appendString(append(b, `},"msg":`...), c.Message)
	b = appendString(append(b, `,"rs":`...), c.RedemptionSecret)
	return append(b, '}'), true
}

// validUTF8 reports whether every string is valid UTF-8.
func validUTF8(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// appendString appends s, which must be valid UTF-8, as a JSON string. It
// escapes only what JSON requires: quote, backslash and control characters.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if jsonPlain[ch] == 1 {
			continue
		}
		b = append(b, s[start:i]...)
		switch ch {
		case '"', '\\':
			b = append(b, '\\', ch)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonPlain marks the bytes appendString copies as they are: everything but
// control characters, the quote and the backslash (bytes of multi-byte UTF-8
// included: strings are validated first). TestJSONPlain checks it.
const jsonPlain = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x01\x01\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
