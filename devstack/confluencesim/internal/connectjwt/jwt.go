package connectjwt

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxTokenSize bounds the tokens Parse accepts; Connect JWTs are far smaller.
const MaxTokenSize = 8 << 10

// Header is the JOSE header of a Connect JWT.
type Header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid,omitempty"`
}

// Claims are the registered and Connect-specific claims the simulator reads
// and writes. Times are Unix seconds.
type Claims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub,omitempty"`
	Aud Audience `json:"aud,omitempty"`
	Iat int64    `json:"iat"`
	Exp int64    `json:"exp"`
	Qsh string   `json:"qsh,omitempty"`
}

// Audience is the aud claim, which JWT allows as a string or an array; it
// is always written as an array.
type Audience []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`"`)) {
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

// Contains reports whether the audience names s.
func (a Audience) Contains(s string) bool {
	for _, v := range a {
		if v == s {
			return true
		}
	}
	return false
}

// Token is a parsed, not yet verified, JWT.
type Token struct {
	Header Header
	Claims Claims
	// HasIat and HasExp record whether those claims were present, since a
	// zero value cannot tell "absent" from "1970".
	HasIat, HasExp bool

	signingInput string
	signature    []byte
}

// Errors returned by Parse and the Verify functions. Messages name the
// failed check and never include the token or a key.
var (
	ErrMalformed    = errors.New("connectjwt: malformed JWT")
	ErrAlgorithm    = errors.New("connectjwt: unexpected JWT algorithm")
	ErrSignature    = errors.New("connectjwt: JWT signature does not verify")
	ErrExpired      = errors.New("connectjwt: JWT expired")
	ErrNotYetValid  = errors.New("connectjwt: JWT issued in the future")
	ErrMissingClaim = errors.New("connectjwt: JWT lacks a required claim")
)

// Parse splits and decodes a compact JWT without verifying it.
func Parse(token string) (*Token, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want 3 segments, got %d", ErrMalformed, len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	t := &Token{signingInput: parts[0] + "." + parts[1], signature: sig}
	if err := json.Unmarshal(hb, &t.Header); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	var raw struct {
		Iss *string  `json:"iss"`
		Sub *string  `json:"sub"`
		Aud Audience `json:"aud"`
		Iat *float64 `json:"iat"`
		Exp *float64 `json:"exp"`
		Qsh *string  `json:"qsh"`
	}
	if err := json.Unmarshal(pb, &raw); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object with well-typed claims", ErrMalformed)
	}
	if raw.Iss != nil {
		t.Claims.Iss = *raw.Iss
	}
	if raw.Sub != nil {
		t.Claims.Sub = *raw.Sub
	}
	if raw.Qsh != nil {
		t.Claims.Qsh = *raw.Qsh
	}
	t.Claims.Aud = raw.Aud
	if raw.Iat != nil {
		t.Claims.Iat, t.HasIat = seconds(*raw.Iat), true
	}
	if raw.Exp != nil {
		t.Claims.Exp, t.HasExp = seconds(*raw.Exp), true
	}
	return t, nil
}

func seconds(f float64) int64 {
	if f > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	if f < math.MinInt64/2 {
		return math.MinInt64 / 2
	}
	return int64(math.Floor(f))
}

// VerifyHS256 checks that the token is HS256 and that its signature was made
// with secret. Any other alg, "none" included, is refused.
func (t *Token) VerifyHS256(secret []byte) error {
	if t.Header.Alg != "HS256" {
		return fmt.Errorf("%w: want HS256, got %q", ErrAlgorithm, t.Header.Alg)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t.signingInput))
	if !hmac.Equal(mac.Sum(nil), t.signature) {
		return ErrSignature
	}
	return nil
}

// VerifyRS256 checks that the token is RS256 and signed by key's owner.
func (t *Token) VerifyRS256(key *rsa.PublicKey) error {
	if t.Header.Alg != "RS256" {
		return fmt.Errorf("%w: want RS256, got %q", ErrAlgorithm, t.Header.Alg)
	}
	sum := sha256.Sum256([]byte(t.signingInput))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], t.signature); err != nil {
		return ErrSignature
	}
	return nil
}

// CheckTimes requires iat and exp, refuses a token past exp or issued in
// the future, each with leeway.
func (t *Token) CheckTimes(now time.Time, leeway time.Duration) error {
	if !t.HasExp {
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if !t.HasIat {
		return fmt.Errorf("%w: iat", ErrMissingClaim)
	}
	l := int64(leeway / time.Second)
	n := now.Unix()
	if n > t.Claims.Exp+l {
		return ErrExpired
	}
	if t.Claims.Iat > n+l {
		return ErrNotYetValid
	}
	return nil
}

// SignHS256 returns a compact HS256 JWT of claims (any JSON-encodable
// value).
func SignHS256(claims any, secret []byte) (string, error) {
	input, err := signingInput(Header{Alg: "HS256", Typ: "JWT"}, claims)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignRS256 returns a compact RS256 JWT of claims with kid in its header.
func SignRS256(claims any, key *rsa.PrivateKey, kid string) (string, error) {
	input, err := signingInput(Header{Alg: "RS256", Typ: "JWT", Kid: kid}, claims)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func signingInput(h Header, claims any) (string, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("connectjwt: encode header: %w", err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("connectjwt: encode claims: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb), nil
}
