package connect

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// Leeway is the clock skew allowed when checking exp and nbf.
const Leeway = 30 * time.Second

// maxTokenSize bounds a compact JWT before any decoding.
const maxTokenSize = 16 << 10

// Algorithms a Connect JWT may be signed with. Each verification pins one.
const (
	HS256 = "HS256"
	RS256 = "RS256"
)

// The reasons a token is refused. Verification errors wrap one of them
// (errors.Is works through the *apperr.Error the middleware returns).
var (
	ErrMalformed      = errors.New("connect: malformed token")
	ErrAlgorithm      = errors.New("connect: token algorithm not allowed here")
	ErrSignature      = errors.New("connect: bad token signature")
	ErrExpired        = errors.New("connect: token expired")
	ErrNotYetValid    = errors.New("connect: token not yet valid")
	ErrQSH            = errors.New("connect: qsh does not match this request")
	ErrIssuer         = errors.New("connect: unknown or mismatched issuer")
	ErrAudience       = errors.New("connect: token audience is not this app")
	ErrNoSubject      = errors.New("connect: token has no user (sub)")
	ErrNoToken        = errors.New("connect: no token")
	ErrTenantState    = errors.New("connect: the app is not enabled on this site")
	ErrUnknownKey     = errors.New("connect: unknown install key id")
	ErrBadKeyID       = errors.New("connect: install key id does not match the allowed pattern")
	ErrKeyFetch       = errors.New("connect: install key could not be fetched")
	ErrHostNotAllowed = errors.New("connect: the site's base URL is not an allowed product host")
	ErrBadPayload     = errors.New("connect: lifecycle payload is malformed or does not match the token")
)

// Header is the protected header of a Connect JWT.
type Header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid,omitempty"`
}

// Audience is the aud claim, a string or an array of strings on the wire.
type Audience []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// Contains reports whether the audience names want, ignoring one trailing
// slash on either side.
func (a Audience) Contains(want string) bool {
	want = strings.TrimSuffix(want, "/")
	for _, v := range a {
		if strings.TrimSuffix(v, "/") == want {
			return true
		}
	}
	return false
}

// Claims are the claims of a Connect JWT that we read or write. Times are
// Unix seconds.
type Claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub,omitempty"`
	Audience  Audience        `json:"aud,omitempty"`
	IssuedAt  int64           `json:"iat"`
	ExpiresAt int64           `json:"exp"`
	NotBefore int64           `json:"nbf,omitempty"`
	QSH       string          `json:"qsh,omitempty"`
	Context   json.RawMessage `json:"context,omitempty"`
}

// wireClaims reads the numeric dates as JSON numbers of any form (some
// signers write 1.7e9 or fractions).
type wireClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  Audience        `json:"aud"`
	IssuedAt  float64         `json:"iat"`
	ExpiresAt float64         `json:"exp"`
	NotBefore float64         `json:"nbf"`
	QSH       *string         `json:"qsh"`
	Context   json.RawMessage `json:"context"`
}

// Token is a decoded, not yet verified compact JWS.
type Token struct {
	Header Header
	Claims Claims
	// HasQSH tells an absent qsh from an empty one.
	HasQSH bool

	signingInput string
	signature    []byte
}

var b64 = base64.RawURLEncoding.Strict()

// ParseToken splits and decodes a compact JWT without verifying it. The
// header must name an algorithm and carry no "crit"; the claims must hold
// iss and exp. The error wraps ErrMalformed.
func ParseToken(s string) (*Token, error) {
	if len(s) > maxTokenSize {
		return nil, ErrMalformed
	}
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(sig, '.') >= 0 || h == "" || p == "" || sig == "" {
		return nil, ErrMalformed
	}
	hdr, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	pb, err := b64.DecodeString(p)
	if err != nil {
		return nil, ErrMalformed
	}
	// Absent dates keep the value -1, which no JSON number here may have.
	wc := wireClaims{IssuedAt: -1, ExpiresAt: -1, NotBefore: -1}
	if err := json.Unmarshal(pb, &wc); err != nil {
		return nil, ErrMalformed
	}
	sb, err := b64.DecodeString(sig)
	if err != nil {
		return nil, ErrMalformed
	}
	t := &Token{Header: hdr, signingInput: s[:len(h)+1+len(p)], signature: sb}
	t.Claims = Claims{Issuer: wc.Issuer, Subject: wc.Subject, Audience: wc.Audience, Context: wc.Context}
	if wc.QSH != nil {
		t.HasQSH, t.Claims.QSH = true, *wc.QSH
	}
	var okDates bool
	if t.Claims.ExpiresAt, okDates = numericDate(wc.ExpiresAt); !okDates || wc.ExpiresAt == -1 {
		return nil, ErrMalformed
	}
	if t.Claims.IssuedAt, okDates = numericDate(wc.IssuedAt); !okDates {
		return nil, ErrMalformed
	}
	if t.Claims.NotBefore, okDates = numericDate(wc.NotBefore); !okDates {
		return nil, ErrMalformed
	}
	if t.Claims.Issuer == "" {
		return nil, ErrMalformed
	}
	return t, nil
}

// knownHeaders are the encoded headers Atlassian and atlassian-jwt send,
// decoded once: most tokens skip decoding their header.
var knownHeaders = map[string]Header{
	b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)): {Alg: HS256, Typ: "JWT"},
	b64.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`)): {Alg: HS256, Typ: "JWT"},
	b64.EncodeToString([]byte(`{"alg":"HS256"}`)):             {Alg: HS256},
}

// parseHeader decodes a protected header: it must name an algorithm and
// carry no "crit".
func parseHeader(seg string) (Header, error) {
	if h, ok := knownHeaders[seg]; ok {
		return h, nil
	}
	hb, err := b64.DecodeString(seg)
	if err != nil {
		return Header{}, ErrMalformed
	}
	var hdr struct {
		Header
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg == "" || hdr.Crit != nil {
		return Header{}, ErrMalformed
	}
	return hdr.Header, nil
}

// numericDate converts an optional JSON number (-1 when absent) to whole
// seconds (0 when absent).
func numericDate(v float64) (int64, bool) {
	if v == -1 {
		return 0, true
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1<<40 {
		return 0, false
	}
	return int64(v), true
}

// VerifyHS256 checks that the token is HS256 and that its signature is the
// HMAC-SHA256 of its signing input under secret, compared in constant time.
// go-jose is not used: it refuses HMAC keys under 32 bytes, and Atlassian
// does not promise longer shared secrets.
func (t *Token) VerifyHS256(secret []byte) error {
	if t.Header.Alg != HS256 {
		return ErrAlgorithm
	}
	if len(secret) == 0 {
		return ErrSignature
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t.signingInput))
	if !hmac.Equal(m.Sum(nil), t.signature) {
		return ErrSignature
	}
	return nil
}

// VerifyRS256 checks that the token is RS256 and signed by key.
func (t *Token) VerifyRS256(key *rsa.PublicKey) error {
	if t.Header.Alg != RS256 {
		return ErrAlgorithm
	}
	if key == nil {
		return ErrSignature
	}
	sum := sha256.Sum256([]byte(t.signingInput))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], t.signature); err != nil {
		return ErrSignature
	}
	return nil
}

// CheckTime refuses a token past exp, or before nbf, by more than Leeway.
func (t *Token) CheckTime(now time.Time) error {
	s := now.Unix()
	lw := int64(Leeway / time.Second)
	if s > t.Claims.ExpiresAt+lw {
		return ErrExpired
	}
	if t.Claims.NotBefore != 0 && s+lw < t.Claims.NotBefore {
		return ErrNotYetValid
	}
	return nil
}

// hs256Header is the encoded header of every token we sign.
var hs256Header = b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// SignHS256 returns a compact HS256 JWT of claims under secret.
func SignHS256(c Claims, secret []byte) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("connect: empty shared secret")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(hs256Header) + 1 + b64.EncodedLen(len(payload)) + 1 + 43)
	b.WriteString(hs256Header)
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(b.String()))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(m.Sum(nil)))
	return b.String(), nil
}
