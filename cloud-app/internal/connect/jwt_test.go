package connect

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/interop"
)

type nodeJWTResult struct {
	Token   string          `json:"token"`
	Payload json.RawMessage `json:"payload"`
	Alg     string          `json:"alg"`
	Kid     string          `json:"kid"`
	Error   string          `json:"error"`
}

// TestHS256_AtlassianJWTAcceptsOurs signs with SignHS256 and decodes with
// atlassian-jwt's decodeSymmetric, including the short secret
// "sharedsecret"; a wrong secret fails on the Node side too.
func TestHS256_AtlassianJWTAcceptsOurs(t *testing.T) {
	now := time.Now().Unix()
	secrets := []string{"sharedsecret", "x", "a 64-character shared secret of the kind Confluence Cloud hands out"}
	type op struct {
		Op     string `json:"op"`
		Token  string `json:"token"`
		Secret string `json:"secret"`
	}
	var ops []op
	for _, s := range secrets {
		tok, err := SignHS256(Claims{Issuer: "space-sync", IssuedAt: now, ExpiresAt: now + 180, QSH: "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"}, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op{"decodeSymmetric", tok, s}, op{"decodeSymmetric", tok, s + "-wrong"})
	}
	var got []nodeJWTResult
	interop.Node(t, "connect_jwt.mjs", ops, &got)
	for i := 0; i < len(ops); i += 2 {
		ok, bad := got[i], got[i+1]
		if ok.Error != "" || ok.Alg != "HS256" {
			t.Errorf("secret %q: atlassian-jwt refused our token: %s (alg %q)", ops[i].Secret, ok.Error, ok.Alg)
			continue
		}
		var c struct {
			Iss string `json:"iss"`
			QSH string `json:"qsh"`
			Exp int64  `json:"exp"`
		}
		if err := json.Unmarshal(ok.Payload, &c); err != nil || c.Iss != "space-sync" || c.Exp != now+180 || c.QSH == "" {
			t.Errorf("secret %q: payload as Node read it: %s (%v)", ops[i].Secret, ok.Payload, err)
		}
		if bad.Error == "" {
			t.Errorf("secret %q: atlassian-jwt accepted our token with a wrong secret", ops[i].Secret)
		}
	}
}

// TestHS256_WeAcceptAtlassianJWTs verifies tokens atlassian-jwt's
// encodeSymmetric made, and refuses them under a wrong secret.
func TestHS256_WeAcceptAtlassianJWTs(t *testing.T) {
	now := time.Now().Unix()
	type op struct {
		Op      string         `json:"op"`
		Payload map[string]any `json:"payload"`
		Secret  string         `json:"secret"`
	}
	secrets := []string{"sharedsecret", "s", "a 64-character shared secret of the kind Confluence Cloud hands out"}
	var ops []op
	for _, s := range secrets {
		ops = append(ops, op{"encodeSymmetric", map[string]any{
			"iss": "client-key-1", "sub": "557058:acc", "iat": now, "exp": now + 180, "qsh": ContextQSH,
			"aud": "space-sync", "context": map[string]any{"license": "none"},
		}, s})
	}
	var got []nodeJWTResult
	interop.Node(t, "connect_jwt.mjs", ops, &got)
	for i, g := range got {
		if g.Error != "" {
			t.Fatalf("node: %s", g.Error)
		}
		tok, err := ParseToken(g.Token)
		if err != nil {
			t.Fatalf("ParseToken: %v", err)
		}
		if err := tok.VerifyHS256([]byte(secrets[i])); err != nil {
			t.Errorf("secret %q: VerifyHS256: %v", secrets[i], err)
		}
		if err := tok.VerifyHS256([]byte(secrets[i] + "x")); !errors.Is(err, ErrSignature) {
			t.Errorf("secret %q: wrong secret: got %v, want ErrSignature", secrets[i], err)
		}
		c := tok.Claims
		if c.Issuer != "client-key-1" || c.Subject != "557058:acc" || c.ExpiresAt != now+180 || c.QSH != ContextQSH ||
			!tok.HasQSH || !c.Audience.Contains("space-sync") || len(c.Context) == 0 {
			t.Errorf("claims as we read them: %+v", c)
		}
	}
}

// TestRS256_WeAcceptAtlassianJWTs verifies an RS256 token atlassian-jwt's
// encodeAsymmetric made (as Atlassian signs installs), and checks that
// Node verifies one we signed in the test helper the same way.
func TestRS256_WeAcceptAtlassianJWTs(t *testing.T) {
	k := testRSAKey()
	other := otherRSAKey()
	now := time.Now().Unix()
	claims := map[string]any{"iss": "client-key-1", "aud": []string{"https://app.example.com"}, "iat": now, "exp": now + 180, "qsh": "x"}
	ops := []map[string]any{
		{"op": "encodeAsymmetric", "payload": claims, "privateKeyPem": privatePEM(t, k), "kid": "kid-1"},
		{"op": "decodeAsymmetric", "token": signRaw(t, map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kid-1"}, claims, k, nil), "publicKeyPem": publicPEM(t, k)},
	}
	var got []nodeJWTResult
	interop.Node(t, "connect_jwt.mjs", ops, &got)
	if got[0].Error != "" || got[1].Error != "" {
		t.Fatalf("node: %q %q", got[0].Error, got[1].Error)
	}
	tok, err := ParseToken(got[0].Token)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header.Kid != "kid-1" || tok.Header.Alg != RS256 {
		t.Errorf("header: %+v", tok.Header)
	}
	if err := tok.VerifyRS256(&k.PublicKey); err != nil {
		t.Errorf("VerifyRS256: %v", err)
	}
	if err := tok.VerifyRS256(&other.PublicKey); !errors.Is(err, ErrSignature) {
		t.Errorf("another key: got %v, want ErrSignature", err)
	}
	if err := tok.VerifyHS256([]byte("secret")); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("VerifyHS256 of an RS256 token: got %v, want ErrAlgorithm", err)
	}
}

func TestParseToken_ErrMalformed(t *testing.T) {
	secret := []byte("sharedsecret")
	hs := map[string]string{"alg": "HS256", "typ": "JWT"}
	good := map[string]any{"iss": "ck", "exp": 2000000000}
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"well formed", signRaw(t, hs, good, nil, secret), true},
		{"fractional dates", signRaw(t, hs, map[string]any{"iss": "ck", "exp": 2.0000000005e9, "iat": 1.9e9}, nil, secret), true},
		{"two segments", "a.b", false},
		{"four segments", signRaw(t, hs, good, nil, secret) + ".x", false},
		{"empty", "", false},
		{"header not base64url", "*" + signRaw(t, hs, good, nil, secret)[strings.Index(signRaw(t, hs, good, nil, secret), "."):], false},
		{"padded base64", signRaw(t, hs, good, nil, secret) + "=", false},
		{"no alg", signRaw(t, map[string]string{"typ": "JWT"}, good, nil, secret), false},
		{"crit header", signRaw(t, map[string]any{"alg": "HS256", "crit": []string{"exp"}}, good, nil, secret), false},
		{"no exp", signRaw(t, hs, map[string]any{"iss": "ck"}, nil, secret), false},
		{"exp a string", signRaw(t, hs, map[string]any{"iss": "ck", "exp": "2000000000"}, nil, secret), false},
		{"negative exp", signRaw(t, hs, map[string]any{"iss": "ck", "exp": -1}, nil, secret), false},
		{"no iss", signRaw(t, hs, map[string]any{"exp": 2000000000}, nil, secret), false},
		{"claims not an object", signRaw(t, hs, []int{1}, nil, secret), false},
		{"aud a number", signRaw(t, hs, map[string]any{"iss": "ck", "exp": 2000000000, "aud": 3}, nil, secret), false},
		{"too long", string(make([]byte, maxTokenSize+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseToken(tt.tok)
			if tt.ok && err != nil {
				t.Fatalf("got %v, want a token", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestToken_VerifyHS256(t *testing.T) {
	secret := []byte("sharedsecret")
	claims := map[string]any{"iss": "ck", "exp": 2000000000}
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"HS256", signRaw(t, map[string]string{"alg": "HS256"}, claims, nil, secret), nil},
		{"alg none", signRaw(t, map[string]string{"alg": "none"}, claims, nil, nil) + "c2ln", ErrAlgorithm},
		{"alg hs256 lower case", signRaw(t, map[string]string{"alg": "hs256"}, claims, nil, secret), ErrAlgorithm},
		{"HS512 header", signRaw(t, map[string]string{"alg": "HS512"}, claims, nil, secret), ErrAlgorithm},
		{"RS256 header, HMAC signature", signRaw(t, map[string]string{"alg": "RS256"}, claims, nil, secret), ErrAlgorithm},
		{"wrong secret", signRaw(t, map[string]string{"alg": "HS256"}, claims, nil, []byte("sharedsecreT")), ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseToken(tt.tok)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.VerifyHS256(secret); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestToken_CheckTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		exp, nbf int64
		want     error
	}{
		{"valid", now.Unix() + 60, 0, nil},
		{"just expired, within leeway", now.Unix() - int64(Leeway/time.Second), 0, nil},
		{"expired beyond leeway", now.Unix() - int64(Leeway/time.Second) - 1, 0, ErrExpired},
		{"nbf within leeway", now.Unix() + 60, now.Unix() + int64(Leeway/time.Second), nil},
		{"nbf in the future", now.Unix() + 600, now.Unix() + int64(Leeway/time.Second) + 1, ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &Token{Claims: Claims{ExpiresAt: tt.exp, NotBefore: tt.nbf}}
			if err := tok.CheckTime(now); err != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
