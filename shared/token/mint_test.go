package token

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"spacesync.io/shared/apperr"
)

func TestMint_OK(t *testing.T) {
	ks := serviceKeys(t)
	c := testClaims(t0)
	tok := mustMint(t, ks, c)
	if len(tok) > MaxMintedSize {
		t.Errorf("token is %d bytes, over %d", len(tok), MaxMintedSize)
	}

	// The protected header holds exactly the allowed members.
	wantHeader := map[string]any{
		"alg": "A256KW", "enc": "A256GCM", "kid": "k1", "typ": Type,
		"iss": testIssuer, "jti": c.ID, "iat": json.Number(strconv.FormatInt(t0.Unix(), 10)),
		"exp": json.Number(strconv.FormatInt(t0.Add(7*24*time.Hour).Unix(), 10)), "ver": json.Number("1"),
	}
	if diff := cmp.Diff(wantHeader, decodeHeader(t, tok)); diff != "" {
		t.Errorf("protected header (-want +got):\n%s", diff)
	}

	// go-jose alone decrypts it to exactly the claims of DESIGN section 4,
	// built independently of Mint's encoder.
	obj, err := jose.ParseEncryptedCompact(tok, []jose.KeyAlgorithm{jose.A256KW}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := obj.Decrypt(testSecret("k1"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(pt, &got); err != nil {
		t.Fatalf("claims are not JSON: %v\n%s", err, pt)
	}
	if err := json.Unmarshal(contents(t, c, nil), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("encrypted claims (-want +got):\n%s", diff)
	}

	// Every mint is a new token: new CEK, new IV.
	again := mustMint(t, ks, c)
	if again == tok || segments(t, again)[2] == segments(t, tok)[2] {
		t.Error("two mints share their IV")
	}
}

func TestMint_Defaults(t *testing.T) {
	c := testClaims(t0.Add(123 * time.Millisecond))
	c.Version, c.Audience, c.NotBefore, c.Expiry = 0, "", time.Time{}, time.Time{}
	got, err := testOpener(t).Open([]byte(mustMint(t, serviceKeys(t), c)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Version || got.Audience != Audience || !got.IssuedAt.Equal(t0) || !got.NotBefore.Equal(t0) || !got.Expiry.Equal(t0.Add(Lifetime)) {
		t.Errorf("defaults: ver %d aud %q iat %v nbf %v exp %v", got.Version, got.Audience, got.IssuedAt, got.NotBefore, got.Expiry)
	}
}

func TestMint_FirstKeyMints(t *testing.T) {
	for _, set := range []string{keyEntry("k1", "k1") + "," + keyEntry("k0", "k0"), keyEntry("k0", "k0") + "," + keyEntry("k1", "k1")} {
		ks := mustKeys(t, set)
		tok := mustMint(t, ks, testClaims(t0))
		if got, want := decodeHeader(t, tok)["kid"], ks.KeyIDs()[0]; got != want {
			t.Errorf("set %v minted with kid %v, want %v", ks, got, want)
		}
		// Both orders open everywhere: every key decrypts.
		if _, err := testOpener(t).Open([]byte(tok)); err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}

// permissions returns n principals with names of nameLen characters.
func permissions(n, nameLen int) []Principal {
	out := make([]Principal, n)
	for i := range out {
		out[i] = Principal{Type: PrincipalGroup, ID: "8ad6f8b4-3c0e-4b4e-9d3b-" + strconv.Itoa(100000000000+i), Name: strings.Repeat("g", nameLen)}
	}
	return out
}

// TestMint_UserLimits checks each limit a user can hit, on both sides of
// it: validation_failed names the field.
func TestMint_UserLimits(t *testing.T) {
	ks := serviceKeys(t)
	tests := []struct {
		name  string
		edit  func(*Claims)
		field string // "" means the mint succeeds
	}{
		{"message 1000 characters", func(c *Claims) { c.Message = strings.Repeat("é", 1000) }, ""},
		{"message 1001 characters", func(c *Claims) { c.Message = strings.Repeat("é", 1001) }, "message"},
		{"message with markup and controls", func(c *Claims) { c.Message = "<b>\"hi\"</b>\n\t\\ & \x01 \u2028 😀" }, ""},
		{"message not UTF-8", func(c *Claims) { c.Message = "caf\xe9" }, "message"},
		{"50 permissions", func(c *Claims) { c.Sync.Permissions = permissions(50, 40) }, ""},
		{"51 permissions", func(c *Claims) { c.Sync.Permissions = permissions(51, 40) }, "permissions"},
		{"permission of unknown type", func(c *Claims) { c.Sync.Permissions[0].Type = "role" }, "permissions"},
		{"permission without id", func(c *Claims) { c.Sync.Permissions[0].ID = "" }, "permissions"},
		{"blank sync name", func(c *Claims) { c.Sync.Name = " " }, "name"},
		{"largest realistic token", func(c *Claims) {
			c.Sync.Permissions = permissions(50, 60)
			c.Message = strings.Repeat("m", 1000)
		}, ""},
		{"over 12 KiB", func(c *Claims) {
			c.Sync.Permissions = permissions(50, 100)
			c.Message = strings.Repeat("€", 1000)
		}, "message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims(t0)
			tt.edit(&c)
			tok, err := Mint(ks, c)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Mint: %v", err)
				}
				if len(tok) > MaxMintedSize {
					t.Fatalf("token is %d bytes", len(tok))
				}
				got, err := testOpener(t).Open([]byte(tok))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if diff := cmp.Diff(&c, got); diff != "" {
					t.Errorf("Open (-want +got):\n%s", diff)
				}
				return
			}
			ae := apperr.As(err)
			if ae.Code != apperr.ValidationFailed || ae.Fields[tt.field] == "" {
				t.Fatalf("Mint: %v (fields %v), want validation_failed on %q", err, ae.Fields, tt.field)
			}
		})
	}
}

// TestMint_CallerMistakes checks what only a bug in the caller can cause is
// a plain (internal) error, not a user-facing one.
func TestMint_CallerMistakes(t *testing.T) {
	ks := serviceKeys(t)
	tests := []struct {
		name string
		keys *KeySet
		edit func(*Claims)
	}{
		{"nil keys", nil, func(*Claims) {}},
		{"empty keys", &KeySet{}, func(*Claims) {}},
		{"no iat", ks, func(c *Claims) { c.IssuedAt = time.Time{} }},
		{"exp not iat+7d", ks, func(c *Claims) { c.Expiry = c.IssuedAt.Add(Lifetime + time.Second) }},
		{"exp iat+6d", ks, func(c *Claims) { c.Expiry = c.IssuedAt.Add(6 * 24 * time.Hour) }},
		{"nbf at exp", ks, func(c *Claims) { c.NotBefore = c.Expiry }},
		{"nbf before iat", ks, func(c *Claims) { c.NotBefore = c.IssuedAt.Add(-time.Second) }},
		{"version 2", ks, func(c *Claims) { c.Version = 2 }},
		{"other audience", ks, func(c *Claims) { c.Audience = "someone" }},
		{"no jti", ks, func(c *Claims) { c.ID = "" }},
		{"jti with dot", ks, func(c *Claims) { c.ID = strings.Repeat("a", 20) + "." }},
		{"issuer not http", ks, func(c *Claims) { c.Issuer = "ftp://cloud.example.com" }},
		{"issuer with query", ks, func(c *Claims) { c.Issuer = testIssuer + "?x=1" }},
		{"short rs", ks, func(c *Claims) { c.RedemptionSecret = c.RedemptionSecret[:42] }},
		{"no client key", ks, func(c *Claims) { c.Site.ClientKey = "" }},
		{"bad site URL", ks, func(c *Claims) { c.Site.BaseURL = "acme.atlassian.net" }},
		{"no space key", ks, func(c *Claims) { c.Space.Key = "" }},
		{"no sync id", ks, func(c *Claims) { c.Sync.ID = "" }},
		{"space name not UTF-8", ks, func(c *Claims) { c.Space.Name = "\xff" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims(t0)
			tt.edit(&c)
			_, err := Mint(tt.keys, c)
			if err == nil || codeOf(err) != apperr.Internal {
				t.Errorf("Mint: %v, want a plain error", err)
			}
		})
	}
	// The twin: the unedited claims mint.
	if _, err := Mint(ks, testClaims(t0)); err != nil {
		t.Errorf("Mint(valid): %v", err)
	}
}

func TestAppendString(t *testing.T) {
	tests := []string{
		"", "plain", `quote " backslash \ slash /`, "\x00\x01\x1f\x7f", "tab\tnl\ncr\r",
		"é€😀", "\u2028\u2029", "<script>&amp;</script>", "\ufffd", strings.Repeat("ab\"", 100),
	}
	// Random strings of every kind of rune, from a fixed seed.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var b strings.Builder
		for range rng.IntN(20) {
			switch rng.IntN(3) {
			case 0:
				b.WriteByte(byte(rng.IntN(0x80)))
			case 1:
				b.WriteRune(rune(0x80 + rng.IntN(0x800)))
			default:
				if r := rune(rng.IntN(utf8.MaxRune)); utf8.ValidRune(r) {
					b.WriteRune(r)
				}
			}
		}
		tests = append(tests, b.String())
	}
	for _, s := range tests {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("appendString(%q) = %s, which decodes to %q, %v", s, b, back, err)
		}
	}
	// appendClaims refuses invalid UTF-8 in any string; its twin is TestMint_OK.
	for _, s := range []string{"\xff", "a\xc3", "\xed\xa0\x80"} {
		c := testClaims(t0)
		c.Sync.Permissions[4].Name = s
		if _, ok := appendClaims(nil, &c, wireTimes{}); ok {
			t.Errorf("appendClaims accepted the permission name %q", s)
		}
	}
}

// TestJSONPlain checks the lookup table against the JSON rules.
func TestJSONPlain(t *testing.T) {
	if len(jsonPlain) != 256 {
		t.Fatalf("jsonPlain has %d entries", len(jsonPlain))
	}
	for v := range 256 {
		want := byte(1)
		if v < 0x20 || v == '"' || v == '\\' {
			want = 0
		}
		if jsonPlain[v] != want {
			t.Errorf("jsonPlain[%#x] = %d, want %d", v, jsonPlain[v], want)
		}
	}
}

func TestNewClaims(t *testing.T) {
	a := NewClaims(testIssuer, t0.Add(999*time.Millisecond), Site{}, Space{}, Sync{}, "")
	b := NewClaims(testIssuer, t0, Site{}, Space{}, Sync{}, "")
	if !a.IssuedAt.Equal(t0) || !a.NotBefore.Equal(t0) || !a.Expiry.Equal(t0.Add(Lifetime)) {
		t.Errorf("times %v %v %v", a.IssuedAt, a.NotBefore, a.Expiry)
	}
	if a.ID == b.ID || a.RedemptionSecret == b.RedemptionSecret {
		t.Error("NewClaims repeats an id or a secret")
	}
	if !validTokenID(a.ID) || len(a.ID) != 22 {
		t.Errorf("ID %q is not 22 base64url characters", a.ID)
	}
	if len(a.RedemptionSecret) != 43 || !allBase64(a.RedemptionSecret) {
		t.Errorf("RedemptionSecret %q is not 43 base64url characters", a.RedemptionSecret)
	}
}
