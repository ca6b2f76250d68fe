// Package token mints and reads space tokens, format v1 (DESIGN section 4).
//
// A space token is one compact JWE: A256KW key wrap, A256GCM content
// encryption, a `kid` naming the cloud-app key that wrapped it, `typ`
// space-sync-token+jwt, and the claims `iss`, `jti`, `iat`, `exp` and `ver`
// replicated in the protected header. The encrypted claims describe the
// space and sync being paired; only cloud-app holds the keys.
//
// There are two readers, for the two sides:
//
//   - [HeaderReader] needs no key. It normalises the input, checks the five
//     segments and the header allow-list, and checks the replicated claims:
//     lifetime, issuer against a list of trusted cloud-app URLs, `iat` and
//     `exp`. This is what dc-app uses before it asks cloud-app for a preview.
//   - [Opener] holds the [KeySet]. After the same header checks it requires a
//     known `kid`, decrypts, and checks the encrypted claims and their
//     agreement with the header. This is what cloud-app uses.
//
// Every refusal is an *apperr.Error with one of the codes invalid_token,
// unknown_key, unsupported_token, untrusted_issuer, token_not_yet_valid,
// token_expired (and payload_too_large for an oversized upload), and a
// message a person can act on.
//
// cloud-app mints with [NewClaims] and [Mint].
package token

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// The fixed values of format v1.
const (
	// Type is the explicit JWT type of a space token (RFC 8725 section 3.11).
	Type = "space-sync-token+jwt"
	// Audience is the `aud` of every space token.
	Audience = "space-sync-dc"
	// Version is the token format version carried in `ver`.
	Version = 1
)

// Size limits. Inputs are capped before any other work.
const (
	// MaxTokenSize caps a token after whitespace is stripped. Minted tokens
	// are at most MaxMintedSize, so the cap leaves room without letting a
	// reader spend work on large inputs.
	MaxTokenSize = 16 << 10
	// MaxMintedSize is the largest token Mint produces.
	MaxMintedSize = 12 << 10
	// MaxUploadSize caps the raw input (a file or a pasted text) including
	// whitespace; anything larger is payload_too_large.
	MaxUploadSize = 64 << 10
)

// Claim limits.
const (
	// Lifetime is the validity of a token: `exp` is exactly `iat` + Lifetime.
	Lifetime = 7 * 24 * time.Hour
	// MaxMessageLength is the longest sender message, in characters.
	MaxMessageLength = 1000
	// MaxPermissions is the most principals a sync may list.
	MaxPermissions = 50
	// DefaultLeeway is the clock skew allowed when a reader's Leeway is zero.
	DefaultLeeway = 2 * time.Minute
)

// Principal types.
const (
	PrincipalUser  = "user"
	PrincipalGroup = "group"
)

// Principal is a user or group allowed to run sync for a pairing.
type Principal struct {
	// Type is PrincipalUser or PrincipalGroup.
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Site identifies the Confluence Cloud tenant a token comes from.
type Site struct {
	// ClientKey is the Connect clientKey of the tenant.
	ClientKey string `json:"clientKey"`
	// BaseURL is the Confluence Cloud base URL, for example
	// https://example.atlassian.net/wiki.
	BaseURL string `json:"baseUrl"`
	// DisplayURL is the custom-domain URL users see; it may be empty.
	DisplayURL string `json:"displayUrl"`
}

// Space is the Confluence Cloud space a token belongs to.
type Space struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// Sync is the sync a token pairs, with the settings it grants.
type Sync struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Permissions []Principal `json:"permissions"`
	Comments    bool        `json:"comments"`
	Labels      bool        `json:"labels"`
}

// Claims are the encrypted claims of a token (DESIGN section 4). Times have
// whole-second precision on the wire.
type Claims struct {
	// Version is the format version (`ver`); Mint sets it to Version.
	Version int
	// ID is the token id (`jti`), random and URL-safe; see NewID.
	ID string
	// Issuer is cloud-app's public base URL (`iss`).
	Issuer string
	// Audience is `aud`; Mint sets it to Audience.
	Audience  string
	IssuedAt  time.Time
	NotBefore time.Time
	// Expiry is exactly IssuedAt + Lifetime.
	Expiry time.Time
	Site   Site
	Space  Space
	Sync   Sync
	// Message is the sender's message (`msg`), at most MaxMessageLength
	// characters.
	Message string
	// RedemptionSecret is `rs`: 32 random bytes, base64url without padding;
	// see NewRedemptionSecret. cloud-app stores only its hash.
	RedemptionSecret string
}

// Header holds the claims replicated in the protected header. Outside
// cloud-app they are hints: only the key holder can verify them.
type Header struct {
	KeyID    string
	Issuer   string
	ID       string
	IssuedAt time.Time
	Expiry   time.Time
	Version  int
}

// NewID returns a new random token id: 128 bits, base64url (22 characters).
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never returns an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewRedemptionSecret returns a new redemption secret: 256 bits, base64url
// (43 characters).
func NewRedemptionSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewClaims returns the claims of a new token issued by issuer (cloud-app's
// base URL) at now: a fresh ID and redemption secret, NotBefore = IssuedAt,
// Expiry = IssuedAt + Lifetime, with times truncated to whole seconds. Pass
// the result to Mint; keep the hash of RedemptionSecret.
func NewClaims(issuer string, now time.Time, site Site, space Space, sync Sync, message string) Claims {
	iat := time.Unix(now.Unix(), 0).UTC()
	return Claims{
		Version:          Version,
		ID:               NewID(),
		Issuer:           issuer,
		Audience:         Audience,
		IssuedAt:         iat,
		NotBefore:        iat,
		Expiry:           iat.Add(Lifetime),
		Site:             site,
		Space:            space,
		Sync:             sync,
		Message:          message,
		RedemptionSecret: NewRedemptionSecret(),
	}
}
