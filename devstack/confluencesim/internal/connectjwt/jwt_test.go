package connectjwt

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/interop"
)

type jwtOp struct {
	Op            string `json:"op"`
	Token         string `json:"token,omitempty"`
	Secret        string `json:"secret,omitempty"`
	PublicKeyPem  string `json:"publicKeyPem,omitempty"`
	PrivateKeyPem string `json:"privateKeyPem,omitempty"`
	Kid           string `json:"kid,omitempty"`
	Payload       any    `json:"payload,omitempty"`
}

type jwtResult struct {
	Payload map[string]any `json:"payload"`
	Alg     string         `json:"alg"`
	Kid     string         `json:"kid"`
	Token   string         `json:"token"`
	Error   string         `json:"error"`
}

func mustRSA(tb testing.TB) (*rsa.PrivateKey, string, string) {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return key,
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
}

// TestSign_AtlassianJWTDecodes checks that tokens the simulator mints are
// accepted by atlassian-jwt's decoders, and refused with the wrong key.
func TestSign_AtlassianJWTDecodes(t *testing.T) {
	key, pubPEM, _ := mustRSA(t)
	_, otherPEM, _ := mustRSA(t)
	claims := Claims{Iss: "client-key", Sub: "557058:abc", Aud: Audience{"http://127.0.0.1:8081"}, Iat: 1700000000, Exp: 1700000180, Qsh: "context-qsh"}
	const secret = "sharedsecret" // 12 bytes: Atlassian promises no minimum length.
	hs, err := SignHS256(claims, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := SignRS256(claims, key, "kid-1")
	if err != nil {
		t.Fatal(err)
	}
	ops := []jwtOp{
		{Op: "decodeSymmetric", Token: hs, Secret: secret},
		{Op: "decodeSymmetric", Token: hs, Secret: secret + "x"},
		{Op: "decodeAsymmetric", Token: rs, PublicKeyPem: pubPEM},
		{Op: "decodeAsymmetric", Token: rs, PublicKeyPem: otherPEM},
		{Op: "decodeSymmetric", Token: rs, Secret: secret},
	}
	var res []jwtResult
	interop.Node(t, "ajwt_jwt.mjs", ops, &res)
	if len(res) != len(ops) {
		t.Fatalf("got %d results for %d ops", len(res), len(ops))
	}
	for _, i := range []int{0, 2} {
		if res[i].Error != "" {
			t.Fatalf("op %d (%s): %s", i, ops[i].Op, res[i].Error)
		}
		p := res[i].Payload
		if p["iss"] != "client-key" || p["sub"] != "557058:abc" || p["qsh"] != "context-qsh" || p["exp"] != float64(1700000180) {
			t.Errorf("op %d payload = %v", i, p)
		}
	}
	if res[0].Alg != "HS256" || res[2].Alg != "RS256" || res[2].Kid != "kid-1" {
		t.Errorf("alg/kid = %q, %q, %q; want HS256, RS256, kid-1", res[0].Alg, res[2].Alg, res[2].Kid)
	}
	for _, i := range []int{1, 3, 4} {
		if res[i].Error == "" {
			t.Errorf("op %d (%s) with the wrong key or algorithm succeeded", i, ops[i].Op)
		}
	}
}

// TestVerify_AtlassianJWTTokens checks that tokens atlassian-jwt makes verify
// here, and that a wrong key or alg "none" is refused.
func TestVerify_AtlassianJWTTokens(t *testing.T) {
	key, _, privPEM := mustRSA(t)
	other, _, _ := mustRSA(t)
	payload := map[string]any{"iss": "space-sync-dev", "iat": 1700000000, "exp": 1700000180, "qsh": "abc", "aud": "one"}
	ops := []jwtOp{
		{Op: "encodeSymmetric", Payload: payload, Secret: "sharedsecret"},
		{Op: "encodeAsymmetric", Payload: payload, PrivateKeyPem: privPEM, Kid: "k/2"},
	}
	var res []jwtResult
	interop.Node(t, "ajwt_jwt.mjs", ops, &res)
	for i, r := range res {
		if r.Error != "" {
			t.Fatalf("op %d: %s", i, r.Error)
		}
	}
	hs, err := Parse(res[0].Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.VerifyHS256([]byte("sharedsecret")); err != nil {
		t.Errorf("VerifyHS256 with the right secret: %v", err)
	}
	if err := hs.VerifyHS256([]byte("sharedsecreT")); !errors.Is(err, ErrSignature) {
		t.Errorf("VerifyHS256 with a wrong secret = %v, want ErrSignature", err)
	}
	if hs.Claims.Iss != "space-sync-dev" || hs.Claims.Qsh != "abc" || !hs.Claims.Aud.Contains("one") || hs.Claims.Exp != 1700000180 {
		t.Errorf("claims = %+v", hs.Claims)
	}
	if err := hs.VerifyRS256(&key.PublicKey); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("VerifyRS256 of an HS256 token = %v, want ErrAlgorithm", err)
	}
	rs, err := Parse(res[1].Token)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Header.Kid != "k/2" {
		t.Errorf("kid = %q", rs.Header.Kid)
	}
	if err := rs.VerifyRS256(&key.PublicKey); err != nil {
		t.Errorf("VerifyRS256 with the right key: %v", err)
	}
	if err := rs.VerifyRS256(&other.PublicKey); !errors.Is(err, ErrSignature) {
		t.Errorf("VerifyRS256 with another key = %v, want ErrSignature", err)
	}

	// alg "none" with an empty signature, and "none" carrying the HMAC of
	// the right secret: both refused, while the HS256 twin above passes.
	parts := strings.Split(res[0].Token, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	for _, tok := range []string{none, none + parts[2]} {
		p, err := Parse(tok)
		if err != nil {
			t.Fatalf("Parse(none): %v", err)
		}
		if err := p.VerifyHS256([]byte("sharedsecret")); !errors.Is(err, ErrAlgorithm) {
			t.Errorf("VerifyHS256(alg none) = %v, want ErrAlgorithm", err)
		}
	}
}

func TestParse_ErrMalformed(t *testing.T) {
	good, err := SignHS256(map[string]any{"iss": "x", "iat": 1, "exp": 2}, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, token string
		ok          bool
	}{
		{"good", good, true},
		{"two segments", seg(`{"alg":"HS256"}`) + "." + seg(`{}`), false},
		{"four segments", good + ".x", false},
		{"header not base64", "!!." + seg(`{}`) + ".", false},
		{"header not JSON", seg(`nope`) + "." + seg(`{}`) + ".", false},
		{"payload array", seg(`{"alg":"HS256"}`) + "." + seg(`[1]`) + ".", false},
		{"iss a number", seg(`{"alg":"HS256"}`) + "." + seg(`{"iss":5}`) + ".", false},
		{"exp a string", seg(`{"alg":"HS256"}`) + "." + seg(`{"exp":"9"}`) + ".", false},
		{"too long", seg(`{"alg":"HS256"}`) + "." + seg(strings.Repeat(" ", MaxTokenSize)) + ".", false},
	}
	for _, tt := range tests {
		_, err := Parse(tt.token)
		if tt.ok && err != nil {
			t.Errorf("%s: Parse: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse error = %v, want ErrMalformed", tt.name, err)
		}
	}
}

func TestToken_CheckTimes(t *testing.T) {
	now := time.Unix(1700000000, 0)
	mk := func(claims string) *Token {
		tok, err := Parse(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		claims string
		want   error
	}{
		{`{"iat":1700000000,"exp":1700000180}`, nil},
		{`{"iat":1699999000,"exp":1699999990}`, nil}, // within 30 s leeway
		{`{"iat":1699999000,"exp":1699999960}`, ErrExpired},
		{`{"iat":1700000020.5,"exp":1700000180}`, nil},
		{`{"iat":1700000100,"exp":1700000180}`, ErrNotYetValid},
		{`{"iat":1700000000}`, ErrMissingClaim},
		{`{"exp":1700000180}`, ErrMissingClaim},
	}
	for _, tt := range tests {
		err := mk(tt.claims).CheckTimes(now, 30*time.Second)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("CheckTimes(%s) = %v, want %v", tt.claims, err, tt.want)
		}
	}
}

func TestAudience_JSON(t *testing.T) {
	var c Claims
	if err := json.Unmarshal([]byte(`{"aud":"a"}`), &c); err != nil || !c.Aud.Contains("a") {
		t.Errorf("string aud: %v %v", c.Aud, err)
	}
	if err := json.Unmarshal([]byte(`{"aud":["a","b"]}`), &c); err != nil || !c.Aud.Contains("b") || c.Aud.Contains("c") {
		t.Errorf("array aud: %v %v", c.Aud, err)
	}
	if err := json.Unmarshal([]byte(`{"aud":7}`), &c); err == nil {
		t.Error("numeric aud accepted")
	}
}
