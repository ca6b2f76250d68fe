package token

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeySet_OK(t *testing.T) {
	k1, k0 := keyEntry("k1", "k1"), keyEntry("2026-06.old_key", "k0")
	tests := []struct {
		in      string
		kids    []string
		encoded string
	}{
		{k1, []string{"k1"}, k1},
		{k1 + "," + k0, []string{"k1", "2026-06.old_key"}, k1 + "," + k0},
		{" " + k1 + " , " + k0 + "\n", []string{"k1", "2026-06.old_key"}, k1 + "," + k0},
		{k0 + "," + k1, []string{"2026-06.old_key", "k1"}, k0 + "," + k1},
	}
	for _, tt := range tests {
		ks, err := ParseKeySet(tt.in)
		if err != nil {
			t.Errorf("ParseKeySet(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.kids, ks.KeyIDs()); diff != "" {
			t.Errorf("KeyIDs (-want +got):\n%s", diff)
		}
		if got := ks.Encode(); got != tt.encoded {
			t.Errorf("Encode = %q, want %q", got, tt.encoded)
		}
	}
}

func TestParseKeySet_Err(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString(testSecret("secret"))
	k1 := "k1:" + key
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"blank", " \n", "empty"},
		{"empty entry", k1 + ",", "entry 2 is empty"},
		{"no kid", key, `entry 1 has no "kid:" prefix`},
		{"empty kid", ":" + key, "entry 1: the kid must be"},
		{"kid with space", "k 1:" + key, "entry 1: the kid must be"},
		{"kid with slash", "k/1:" + key, "entry 1: the kid must be"},
		{"kid non-ASCII", "kø:" + key, "entry 1: the kid must be"},
		{"kid too long", strings.Repeat("k", 65) + ":" + key, "entry 1: the kid must be"},
		{"key and kid swapped", key + ":k1", "entry 1: the key is"},
		{"padded key", k1 + "=", "entry 1: the key is not unpadded base64url"},
		{"standard base64", "k1:" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xFB}, 32)), "entry 1: the key is not unpadded base64url"},
		{"bad character", "k1:" + key[:42] + "%", "entry 1: the key is not unpadded base64url"},
		{"non-canonical", "k1:" + key[:42] + "B", "entry 1: the key is not unpadded base64url"},
		{"short key", "k1:" + key[:40], "entry 1: the key is 30 bytes; want 32"},
		{"long key", "k1:" + key + "AAAA", "entry 1: the key is 35 bytes; want 32"},
		{"24-byte key", "k1:" + base64.RawURLEncoding.EncodeToString(make([]byte, 24)), "entry 1: the key is 24 bytes"},
		{"duplicate kid", k1 + ",k2:" + key + ",k1:" + key, "entry 3 repeats the kid of entry 1"},
		{"too many keys", strings.Repeat(k1+",", 16) + k1, "17 keys; at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseKeySet(tt.in)
			if err == nil {
				t.Fatalf("ParseKeySet = %v, want an error", ks)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not one line", msg)
			}
			if strings.Contains(msg, key[:8]) {
				t.Errorf("error %q echoes key material", msg)
			}
		})
	}
	// The twin: the same key, well-formed, parses.
	if _, err := ParseKeySet(k1 + ",k2:" + key); err != nil {
		t.Errorf("ParseKeySet(well-formed): %v", err)
	}
}

// TestKeySet_NoKeyMaterialInOutput checks every way a KeySet may end up in a
// log shows the kids and not the keys.
func TestKeySet_NoKeyMaterialInOutput(t *testing.T) {
	ks := serviceKeys(t)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "keys", ks)
	outputs := map[string]string{
		"String": ks.String(),
		"%v":     fmt.Sprintf("%v", ks),
		"%+v":    fmt.Sprintf("%+v", ks),
		"%#v":    fmt.Sprintf("%#v", ks),
		"nested": fmt.Sprintf("%+v", struct{ Keys *KeySet }{ks}),
		"slog":   logged.String(),
	}
	if want := "KeySet[k1 (mints), k0]"; outputs["String"] != want {
		t.Errorf("String = %q, want %q", outputs["String"], want)
	}
	secrets := []string{
		base64.RawURLEncoding.EncodeToString(testSecret("k1"))[:8],
		base64.RawURLEncoding.EncodeToString(testSecret("k0"))[:8],
		fmt.Sprint(testSecret("k1")[:4])[1:10],
	}
	for name, out := range outputs {
		if !strings.Contains(out, "k1") {
			t.Errorf("%s output %q does not name the kids", name, out)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s output %q contains key material", name, out)
			}
		}
	}
	// The twin: Encode, the one way out, does contain the keys.
	for _, s := range secrets[:2] {
		if !strings.Contains(ks.Encode(), s) {
			t.Errorf("Encode lacks the key starting %q", s)
		}
	}
}

func TestGenerateKeySet(t *testing.T) {
	a, err := GenerateKeySet("2026-12")
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKeySet("2026-12")
	if err != nil {
		t.Fatal(err)
	}
	if a.Encode() == b.Encode() {
		t.Error("two generated key sets are equal")
	}
	back, err := ParseKeySet(a.Encode())
	if err != nil {
		t.Fatalf("ParseKeySet(Encode()): %v", err)
	}
	if back.Encode() != a.Encode() {
		t.Error("Encode does not round-trip")
	}
	// A token minted with the generated set opens with the parsed copy.
	o := &Opener{Keys: back, Issuer: testIssuer, Now: func() time.Time { return testNow }}
	if _, err := o.Open([]byte(mustMint(t, a, testClaims(t0)))); err != nil {
		t.Errorf("Open: %v", err)
	}
	for _, kid := range []string{"", "a b", strings.Repeat("x", 65)} {
		if _, err := GenerateKeySet(kid); err == nil {
			t.Errorf("GenerateKeySet(%q) succeeded", kid)
		}
	}
}
