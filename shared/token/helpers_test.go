package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"spacesync.io/shared/apperr"
)

// Fixtures shared by the tests, the fuzz targets and the benchmarks. They
// are deterministic (fixed keys and clock) so that the committed fuzz
// corpus stays meaningful.

const testIssuer = "https://cloud.example.com/spacesync"

// t0 is the tests' issue time; testNow is the time the tests read at.
var (
	t0      = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	testNow = t0.Add(time.Hour)
)

// testSecret returns a fixed 32-byte key derived from name.
func testSecret(name string) []byte {
	s := sha256.Sum256([]byte("space-sync token test key " + name))
	return s[:]
}

// keyEntry returns "kid:base64url(testSecret(secretName))".
func keyEntry(kid, secretName string) string {
	return kid + ":" + base64.RawURLEncoding.EncodeToString(testSecret(secretName))
}

// mustKeys parses a key set or fails the test.
func mustKeys(tb testing.TB, s string) *KeySet {
	tb.Helper()
	ks, err := ParseKeySet(s)
	if err != nil {
		tb.Fatalf("ParseKeySet: %v", err)
	}
	return ks
}

// serviceKeys is cloud-app's set in the tests: k1 mints, k0 is retired but
// still decrypts.
func serviceKeys(tb testing.TB) *KeySet {
	return mustKeys(tb, keyEntry("k1", "k1")+","+keyEntry("k0", "k0"))
}

func testReader() *HeaderReader {
	return &HeaderReader{TrustedIssuers: []string{"https://other.example.com", testIssuer}, Now: func() time.Time { return testNow }}
}

func testOpener(tb testing.TB) *Opener {
	return &Opener{Keys: serviceKeys(tb), Issuer: testIssuer, Now: func() time.Time { return testNow }}
}

// testClaims returns realistic claims issued at iat with fixed ids.
func testClaims(iat time.Time) Claims {
	c := NewClaims(testIssuer, iat,
		Site{ClientKey: "3f1c2a9e-0b7d-4e52-9a51-7d0c7c1f2e11", BaseURL: "https://acme.atlassian.net/wiki", DisplayURL: "https://wiki.acme.com"},
		Space{ID: "98305", Key: "ENG", Name: "Engineering"},
		Sync{ID: "5f0a8c36-6a2f-4a5e-8d0e-7b6a3c1d2e4f", Name: "Engineering (DC)", Comments: true, Labels: false,
			Permissions: []Principal{
				{Type: PrincipalUser, ID: "5b10ac8d82e05b22cc7d4ef5", Name: "Alana Grant"},
				{Type: PrincipalUser, ID: "5b10a2844c20165700ede21g", Name: "Jie Yan Song"},
				{Type: PrincipalGroup, ID: "8ad6f8b4-3c0e-4b4e-9d3b-ffb9e1a5a2c1", Name: "confluence-admins"},
				{Type: PrincipalGroup, ID: "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b", Name: "eng-leads"},
				{Type: PrincipalUser, ID: "712020:8c5d0a61-6f2a-4c33-9d5e-0c4b7a1e9f20", Name: "Ola Nordmann"},
			}},
		"Hi! This token pairs our Engineering space with the DC copy. Import it under Space Sync > Import Token, "+
			"name it as you like, and tell me when it shows SYNCED. It is valid for 7 days.")
	c.ID = "tok-" + strings.Repeat("A", 18)
	c.RedemptionSecret = base64.RawURLEncoding.EncodeToString(testSecret("rs"))
	return c
}

// mustMint mints c with ks or fails the test.
func mustMint(tb testing.TB, ks *KeySet, c Claims) string {
	tb.Helper()
	tok, err := Mint(ks, c)
	if err != nil {
		tb.Fatalf("Mint: %v", err)
	}
	return tok
}

// wireMap is the encrypted claim set of c as a generic JSON object, built
// independently of appendClaims so tests can change single members.
func wireMap(c Claims) map[string]any {
	perms := []any{}
	for _, p := range c.Sync.Permissions {
		perms = append(perms, map[string]any{"type": p.Type, "id": p.ID, "name": p.Name})
	}
	return map[string]any{
		"ver": Version, "jti": c.ID, "iss": c.Issuer, "aud": Audience,
		"iat": c.IssuedAt.Unix(), "nbf": c.IssuedAt.Unix(), "exp": c.IssuedAt.Add(Lifetime).Unix(),
		"site":  map[string]any{"clientKey": c.Site.ClientKey, "baseUrl": c.Site.BaseURL, "displayUrl": c.Site.DisplayURL},
		"space": map[string]any{"id": c.Space.ID, "key": c.Space.Key, "name": c.Space.Name},
		"sync": map[string]any{"id": c.Sync.ID, "name": c.Sync.Name, "permissions": perms,
			"comments": c.Sync.Comments, "labels": c.Sync.Labels},
		"msg": c.Message, "rs": c.RedemptionSecret,
	}
}

// headerMap is the replicated part of the protected header for c (alg, enc
// and kid are added by go-jose).
func headerMap(c Claims) map[string]any {
	return map[string]any{
		"typ": Type, "iss": c.Issuer, "jti": c.ID,
		"iat": c.IssuedAt.Unix(), "exp": c.IssuedAt.Add(Lifetime).Unix(), "ver": Version,
	}
}

// spec describes a token built with go-jose directly, so that tests can
// make real tokens with any algorithm, header or content.
type spec struct {
	alg       jose.KeyAlgorithm
	enc       jose.ContentEncryption
	key       any // defaults to testSecret("k1")
	kid       string
	zip       jose.CompressionAlgorithm
	p2c       int
	header    map[string]any // replicated members; a nil value removes one
	plaintext []byte
}

// craft encrypts s with go-jose. With the zero alg and enc it makes exactly
// what Mint makes, which is what the twins of crafted tokens use.
func craft(tb testing.TB, s spec) string {
	tb.Helper()
	if s.alg == "" {
		s.alg = jose.A256KW
	}
	if s.enc == "" {
		s.enc = jose.A256GCM
	}
	if s.key == nil {
		s.key = testSecret("k1")
	}
	if s.kid == "" {
		s.kid = "k1"
	}
	opts := &jose.EncrypterOptions{Compression: s.zip, ExtraHeaders: map[jose.HeaderKey]any{}}
	for k, v := range s.header {
		if v != nil {
			opts.ExtraHeaders[jose.HeaderKey(k)] = v
		}
	}
	enc, err := jose.NewEncrypter(s.enc, jose.Recipient{Algorithm: s.alg, Key: s.key, KeyID: s.kid, PBES2Count: s.p2c}, opts)
	if err != nil {
		tb.Fatalf("craft: NewEncrypter: %v", err)
	}
	obj, err := enc.Encrypt(s.plaintext)
	if err != nil {
		tb.Fatalf("craft: Encrypt: %v", err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatalf("craft: CompactSerialize: %v", err)
	}
	return tok
}

// craftClaims crafts a token for c with the standard header and content,
// after edit changes them.
func craftClaims(tb testing.TB, c Claims, edit func(header, claims map[string]any)) string {
	tb.Helper()
	h, w := headerMap(c), wireMap(c)
	if edit != nil {
		edit(h, w)
	}
	pt, err := json.Marshal(w)
	if err != nil {
		tb.Fatal(err)
	}
	return craft(tb, spec{header: h, plaintext: pt})
}

// segments splits a compact token.
func segments(tb testing.TB, tok string) []string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 5 {
		tb.Fatalf("token has %d parts", len(parts))
	}
	return parts
}

// decodeHeader returns the protected header of tok as a generic object.
func decodeHeader(tb testing.TB, tok string) map[string]any {
	tb.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(segments(tb, tok)[0])
	if err != nil {
		tb.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var h map[string]any
	if err := d.Decode(&h); err != nil {
		tb.Fatal(err)
	}
	return h
}

// withRawHeader replaces the header segment of tok by rawJSON. The result
// no longer decrypts (the header is the AAD), which header checks must not
// need.
func withRawHeader(tb testing.TB, tok, rawJSON string) string {
	tb.Helper()
	p := segments(tb, tok)
	p[0] = base64.RawURLEncoding.EncodeToString([]byte(rawJSON))
	return strings.Join(p, ".")
}

// withHeader re-encodes the header of tok after edit changes it.
func withHeader(tb testing.TB, tok string, edit func(map[string]any)) string {
	tb.Helper()
	h := decodeHeader(tb, tok)
	edit(h)
	raw, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	return withRawHeader(tb, tok, string(raw))
}

// flipBit flips one bit of the decoded segment seg of tok.
func flipBit(tb testing.TB, tok string, seg, bit int) string {
	tb.Helper()
	p := segments(tb, tok)
	b, err := base64.RawURLEncoding.DecodeString(p[seg])
	if err != nil {
		tb.Fatal(err)
	}
	b[bit/8] ^= 1 << (bit % 8)
	p[seg] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(p, ".")
}

// codeOf returns the code of err, "" for nil. An error that is not an
// *apperr.Error is reported as internal.
func codeOf(err error) apperr.Code {
	if err == nil {
		return ""
	}
	return apperr.CodeOf(err)
}

// checkRefusal fails unless err is an *apperr.Error with code want (or nil
// when want is "") and a message a person can read.
func checkRefusal(tb testing.TB, what string, err error, want apperr.Code) {
	tb.Helper()
	if got := codeOf(err); got != want {
		tb.Errorf("%s: code %q, want %q (err: %v)", what, got, want, err)
		return
	}
	if err == nil {
		return
	}
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		tb.Errorf("%s: %T is not an *apperr.Error", what, err)
		return
	}
	if len(ae.Message) < 20 || strings.ContainsAny(ae.Message, "\n\r") {
		tb.Errorf("%s: message %q is not one readable line", what, ae.Message)
	}
}
