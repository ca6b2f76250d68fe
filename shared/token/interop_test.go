package token

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/interop"
)

// These tests check the token format against npm jose 6, an implementation
// that shares no code with go-jose or with this package.

type joseDecryptIn struct {
	Token                       string   `json:"token"`
	Key                         string   `json:"key"`
	Mode                        string   `json:"mode"`
	KeyManagementAlgorithms     []string `json:"keyManagementAlgorithms"`
	ContentEncryptionAlgorithms []string `json:"contentEncryptionAlgorithms"`
	Issuer                      string   `json:"issuer,omitempty"`
	Audience                    string   `json:"audience,omitempty"`
	Typ                         string   `json:"typ,omitempty"`
	CurrentDate                 int64    `json:"currentDate,omitempty"`
}

type joseDecryptOut struct {
	OK              bool           `json:"ok"`
	ProtectedHeader map[string]any `json:"protectedHeader"`
	Payload         map[string]any `json:"payload"`
	Code            string         `json:"code"`
	Message         string         `json:"message"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// asJSON round-trips v through JSON so it compares equal to what Node sends.
func asJSON(tb testing.TB, v any) map[string]any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestInterop_GoMintsJoseDecrypts(t *testing.T) {
	c := testClaims(t0)
	tok := mustMint(t, serviceKeys(t), c)
	wantHeader := asJSON(t, map[string]any{
		"alg": "A256KW", "enc": "A256GCM", "kid": "k1", "typ": Type,
		"iss": testIssuer, "jti": c.ID, "iat": t0.Unix(), "exp": t0.Add(Lifetime).Unix(), "ver": 1,
	})
	wantClaims := asJSON(t, wireMap(c))
	base := joseDecryptIn{
		Token: tok, Key: b64(testSecret("k1")),
		KeyManagementAlgorithms: []string{"A256KW"}, ContentEncryptionAlgorithms: []string{"A256GCM"},
		Issuer: testIssuer, Audience: Audience, Typ: Type, CurrentDate: testNow.Unix(),
	}
	for _, mode := range []string{"compact", "jwt"} {
		t.Run(mode, func(t *testing.T) {
			in := base
			in.Mode = mode
			var out joseDecryptOut
			interop.Node(t, "jose_decrypt.mjs", in, &out)
			if !out.OK {
				t.Fatalf("jose refused the token: %s: %s", out.Code, out.Message)
			}
			if diff := cmp.Diff(wantHeader, out.ProtectedHeader); diff != "" {
				t.Errorf("protected header (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantClaims, out.Payload); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}

	// jose refuses what it must refuse. Each row changes one input of the
	// accepted call above.
	refusals := []struct {
		name string
		edit func(*joseDecryptIn)
		code string
	}{
		{"wrong key", func(in *joseDecryptIn) { in.Key = b64(testSecret("k9")) }, "ERR_JWE_DECRYPTION_FAILED"},
		{"retired key", func(in *joseDecryptIn) { in.Key = b64(testSecret("k0")) }, "ERR_JWE_DECRYPTION_FAILED"},
		{"key algorithm not allowed", func(in *joseDecryptIn) { in.KeyManagementAlgorithms = []string{"A128KW"} }, "ERR_JOSE_ALG_NOT_ALLOWED"},
		{"content encryption not allowed", func(in *joseDecryptIn) { in.ContentEncryptionAlgorithms = []string{"A128GCM"} }, "ERR_JOSE_ALG_NOT_ALLOWED"},
		{"flipped tag", func(in *joseDecryptIn) { in.Token = flipBit(t, tok, 4, 5) }, "ERR_JWE_DECRYPTION_FAILED"},
		{"other issuer", func(in *joseDecryptIn) { in.Issuer = "https://cloud.example.com" }, "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"other audience", func(in *joseDecryptIn) { in.Audience = "space-sync-cloud" }, "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"other type", func(in *joseDecryptIn) { in.Typ = "JWT" }, "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"expired", func(in *joseDecryptIn) { in.CurrentDate = t0.Add(8 * 24 * time.Hour).Unix() }, "ERR_JWT_EXPIRED"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			in := base
			in.Mode = "jwt"
			r.edit(&in)
			var out joseDecryptOut
			interop.Node(t, "jose_decrypt.mjs", in, &out)
			if out.OK || out.Code != r.code {
				t.Errorf("jose answered ok=%v code=%q (%s); want %s", out.OK, out.Code, out.Message, r.code)
			}
		})
	}
}

type joseEncryptIn struct {
	Key             string         `json:"key"`
	ProtectedHeader map[string]any `json:"protectedHeader"`
	Claims          map[string]any `json:"claims"`
}

// joseMint mints a token for c with npm jose.
func joseMint(t *testing.T, key []byte, c Claims, edit func(header map[string]any)) []byte {
	t.Helper()
	h := map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k1"}
	for k, v := range headerMap(c) {
		h[k] = v
	}
	if edit != nil {
		edit(h)
	}
	var out struct {
		Token string `json:"token"`
	}
	interop.Node(t, "jose_encrypt.mjs", joseEncryptIn{Key: b64(key), ProtectedHeader: h, Claims: wireMap(c)}, &out)
	if len(segments(t, out.Token)) != 5 {
		t.Fatalf("jose made %q", out.Token)
	}
	return []byte(out.Token)
}

func TestInterop_JoseMintsGoOpens(t *testing.T) {
	c := testClaims(t0)
	tok := joseMint(t, testSecret("k1"), c, nil)

	got, err := testOpener(t).Open(tok)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Errorf("Open (-want +got):\n%s", diff)
	}
	h, err := testReader().Read(tok)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := Header{KeyID: "k1", Issuer: testIssuer, ID: c.ID, IssuedAt: t0, Expiry: t0.Add(Lifetime), Version: 1}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}

	// The Go side refuses jose tokens with the wrong key or algorithm.
	refusals := []struct {
		name       string
		key        []byte
		edit       func(map[string]any)
		read, open apperr.Code
	}{
		{"wrong key, same kid", testSecret("k9"), nil, "", apperr.InvalidToken},
		{"unknown kid", testSecret("k9"), func(h map[string]any) { h["kid"] = "k9" }, "", apperr.UnknownKey},
		{"A128KW", testSecret("k1")[:16], func(h map[string]any) { h["alg"] = "A128KW" }, apperr.UnsupportedToken, apperr.UnsupportedToken},
		{"dir", testSecret("k1"), func(h map[string]any) { h["alg"] = "dir" }, apperr.UnsupportedToken, apperr.UnsupportedToken},
		{"A256CBC-HS512", append(testSecret("k1"), testSecret("k0")...), func(h map[string]any) { h["alg"], h["enc"] = "dir", "A256CBC-HS512" }, apperr.UnsupportedToken, apperr.UnsupportedToken},
		{"A256GCMKW", testSecret("k1"), func(h map[string]any) { h["alg"] = "A256GCMKW" }, apperr.UnsupportedToken, apperr.UnsupportedToken},
		{"typ JWT", testSecret("k1"), func(h map[string]any) { h["typ"] = "JWT" }, apperr.UnsupportedToken, apperr.UnsupportedToken},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			tok := joseMint(t, r.key, c, r.edit)
			_, err := testReader().Read(tok)
			checkRefusal(t, "Read", err, r.read)
			_, err = testOpener(t).Open(tok)
			checkRefusal(t, "Open", err, r.open)
		})
	}
}
