package token

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"

	"spacesync.io/shared/apperr"
)

// The allow-lists handed to go-jose. readHeader has already refused any
// other algorithm; these make go-jose refuse them too. They are never
// modified.
var (
	keyAlgorithms      = []jose.KeyAlgorithm{jose.A256KW}
	contentEncryptions = []jose.ContentEncryption{jose.A256GCM}
)

// Opener decrypts and checks tokens with the token keys: this is what
// cloud-app does for a preview and for a redemption.
//
// An Opener is safe for concurrent use if its fields are not changed.
type Opener struct {
	// Keys are the token keys; every key decrypts.
	Keys *KeySet
	// Issuer is this cloud-app's public base URL; a token's `iss` must be
	// the same base URL (see SameBaseURL).
	Issuer string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on `iat`, `nbf` and `exp`; zero or
	// less means DefaultLeeway.
	Leeway time.Duration
}

// wireClaims is the JSON form of Claims.
type wireClaims struct {
	Ver   int64  `json:"ver"`
	JTI   string `json:"jti"`
	Iss   string `json:"iss"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	Site  Site   `json:"site"`
	Space Space  `json:"space"`
	Sync  Sync   `json:"sync"`
	Msg   string `json:"msg"`
	RS    string `json:"rs"`
}

// Open checks raw, the contents of a token file, and returns its claims. It
// runs the header checks of HeaderReader.Read that need no clock or issuer
// list (payload_too_large, invalid_token, unsupported_token), then, in the
// refusal order of DESIGN section 5:
//
//   - unknown_key: the kid is not in Keys (before any key work);
//   - invalid_token: decryption fails (wrong key, any changed bit, ...);
//   - unsupported_token: the encrypted ver is not Version;
//   - invalid_token: the encrypted iss, jti, iat or exp differ from the
//     header's, aud is not Audience, exp − iat is over 7 days, or a claim is
//     malformed;
//   - untrusted_issuer: iss is not the Opener's Issuer;
//   - token_not_yet_valid: iat or nbf later than now plus Leeway;
//   - token_expired: exp not later than now minus Leeway.
//
// The caller then checks the stored record (jti known, rs hash).
//
// With token_expired, and only then, Open also returns the claims: the token
// is authentic and merely late, and a redemption server still owes an exact
// replay of a redemption it already accepted (DESIGN section 5, item 4)
// whatever the clock says. Every other refusal returns nil claims.
func (o *Opener) Open(raw []byte) (*Claims, error) {
	if o.Keys == nil || len(o.Keys.keys) == 0 {
		return nil, internalf("open: no token keys")
	}
	if o.Issuer == "" {
		return nil, internalf("open: no issuer")
	}
	c, err := normalize(raw)
	if err != nil {
		return nil, err
	}
	var buf [maxHeaderJSON]byte
	h, err := readHeader(&c, buf[:])
	if err != nil {
		return nil, err
	}
	js := buf[:]
	secret, ok := o.Keys.lookup(h.kid.of(js))
	if !ok {
		return nil, errUnknownKey(h.kid.of(js))
	}
	obj, err := jose.ParseEncryptedCompact(string(c.b), keyAlgorithms, contentEncryptions)
	if err != nil {
		// readHeader accepted the input, so this is a disagreement between
		// the two parsers: refuse, and keep go-jose's reason for the log.
		return nil, apperr.Wrap(err, apperr.InvalidToken, errInvalid("its header is not readable").Message)
	}
	pt, err := obj.Decrypt(secret)
	if err != nil {
		return nil, errUndecryptable(err)
	}
	var w wireClaims
	if err := json.Unmarshal(pt, &w); err != nil {
		return nil, errBadContents(err)
	}
	if w.Ver != Version {
		return nil, errUnsupportedVersion(w.Ver)
	}
	if w.Iss != string(h.iss.of(js)) || w.JTI != string(h.jti.of(js)) || w.Iat != h.iat || w.Exp != h.exp {
		return nil, errInvalid("its header does not match its contents")
	}
	if w.Aud != Audience {
		return nil, errInvalid("it is meant for " + quote(w.Aud) + ", not for Space Sync")
	}
	claims := &Claims{
		Version:          int(w.Ver),
		ID:               w.JTI,
		Issuer:           w.Iss,
		Audience:         w.Aud,
		IssuedAt:         time.Unix(w.Iat, 0).UTC(),
		NotBefore:        time.Unix(w.Nbf, 0).UTC(),
		Expiry:           time.Unix(w.Exp, 0).UTC(),
		Site:             w.Site,
		Space:            w.Space,
		Sync:             w.Sync,
		Message:          w.Msg,
		RedemptionSecret: w.RS,
	}
	times := wireTimes{iat: w.Iat, nbf: w.Nbf, exp: w.Exp}
	if _, problem := checkClaims(claims, times); problem != "" {
		return nil, errBadContents(errors.New(problem))
	}
	if w.Iss != o.Issuer && !SameBaseURL(w.Iss, o.Issuer) {
		return nil, errWrongIssuer(w.Iss, o.Issuer)
	}
	now, leeway := clock(o.Now, o.Leeway)
	if err := checkTimes(now, leeway, w.Iat, w.Nbf, w.Exp); err != nil {
		if apperr.CodeOf(err) == apperr.TokenExpired {
			return claims, err // authenticated, only late: see Open
		}
		return nil, err
	}
	return claims, nil
}

// errBadContents refuses a token that decrypted but whose claims are not
// those of a v1 token; cause says why, for the log.
func errBadContents(cause error) *apperr.Error {
	return apperr.Wrap(cause, apperr.InvalidToken, errInvalid("its contents are not those of a space token").Message)
}
