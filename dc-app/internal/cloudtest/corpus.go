package cloudtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

// BadToken is a file that must not import, and the code dc-app must
// answer it with.
type BadToken struct {
	Name string
	Body []byte
	Code apperr.Code
	// NeedsCloud is true when only cloud-app can tell the file is bad (it
	// passes every check dc-app can make without the keys); dc-app must
	// then ask for a preview, and must still never redeem it.
	NeedsCloud bool
}

// BadTokens returns the bad-input corpus of the token issue, built around
// real tokens of f: encodings, counts of tokens and segments, sizes,
// header allow-list violations (zip, PBES2, RSA1_5, dir, A128CBC-HS256,
// unknown ver, ...), issuers that only look trusted, dates, and tampered
// tokens that only the key holder can refuse.
func BadTokens(tb testing.TB, f *Fake) []BadToken {
	tb.Helper()
	good := f.Mint(tb, MintOptions{SpaceKey: "CORPUS", Space: "Corpus"})
	segs := strings.Split(good, ".")
	if len(segs) != 5 {
		tb.Fatalf("cloudtest: minted token has %d segments", len(segs))
	}
	header := func(edit func(h map[string]any)) []byte {
		raw, err := base64.RawURLEncoding.DecodeString(segs[0])
		if err != nil {
			tb.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		h := map[string]any{}
		if err := dec.Decode(&h); err != nil {
			tb.Fatal(err)
		}
		edit(h)
		b, err := json.Marshal(h)
		if err != nil {
			tb.Fatal(err)
		}
		return []byte(base64.RawURLEncoding.EncodeToString(b) + "." + strings.Join(segs[1:], "."))
	}
	rawHeader := func(edit func(js string) string) []byte {
		raw, _ := base64.RawURLEncoding.DecodeString(segs[0])
		return []byte(base64.RawURLEncoding.EncodeToString([]byte(edit(string(raw)))) + "." + strings.Join(segs[1:], "."))
	}
	set := func(k string, v any) func(map[string]any) { return func(h map[string]any) { h[k] = v } }
	now := time.Now()
	dates := func(iat time.Time) func(map[string]any) {
		return func(h map[string]any) {
			h["iat"] = iat.Unix()
			h["exp"] = iat.Add(token.Lifetime).Unix()
		}
	}
	utf16le := func(s string, bom bool) []byte {
		var b []byte
		if bom {
			b = append(b, 0xFF, 0xFE)
		}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return b
	}
	flip := func(i int) []byte {
		s := []byte(segs[i])
		if s[2] == 'A' {
			s[2] = 'B'
		} else {
			s[2] = 'A'
		}
		out := append([]string{}, segs...)
		out[i] = string(s)
		return []byte(strings.Join(out, "."))
	}
	other, err := token.GenerateKeySet("k1")
	if err != nil {
		tb.Fatal(err)
	}

	return []BadToken{
		{Name: "utf16-with-bom", Body: utf16le(good, true), Code: apperr.InvalidToken},
		{Name: "utf16-no-bom", Body: utf16le(good, false), Code: apperr.InvalidToken},
		{Name: "two-tokens", Body: []byte(good + "\n" + good + "\n"), Code: apperr.InvalidToken},
		{Name: "percent-in-segment", Body: []byte(segs[0] + "." + segs[1] + "." + segs[2] + ".%41" + segs[3][3:] + "." + segs[4]), Code: apperr.InvalidToken},
		{Name: "six-segments", Body: []byte(good + ".AAAA"), Code: apperr.InvalidToken},
		{Name: "four-segments", Body: []byte(strings.Join(segs[:4], ".")), Code: apperr.InvalidToken},
		{Name: "dots-10MB", Body: bytes.Repeat([]byte("."), 10<<20), Code: apperr.PayloadTooLarge},
		{Name: "dots-70KiB", Body: bytes.Repeat([]byte("."), 70<<10), Code: apperr.PayloadTooLarge},
		{Name: "empty", Body: nil, Code: apperr.InvalidToken},
		{Name: "whitespace-only", Body: []byte(" \r\n\t\n"), Code: apperr.InvalidToken},
		{Name: "png", Body: []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"), Code: apperr.InvalidToken},
		{Name: "json-object", Body: []byte(`{"hello": "world"}`), Code: apperr.InvalidToken},
		{Name: "url-encoded", Body: []byte(strings.ReplaceAll(good, ".", "%2E")), Code: apperr.InvalidToken},
		{Name: "truncated", Body: []byte(good[:len(good)-10]), Code: apperr.InvalidToken},
		{Name: "zip-DEF", Body: header(set("zip", "DEF")), Code: apperr.UnsupportedToken},
		{Name: "PBES2", Body: header(func(h map[string]any) { h["alg"] = "PBES2-HS512+A256KW"; h["p2c"] = 100000000 }), Code: apperr.UnsupportedToken},
		{Name: "RSA1_5", Body: header(set("alg", "RSA1_5")), Code: apperr.UnsupportedToken},
		{Name: "dir", Body: header(set("alg", "dir")), Code: apperr.UnsupportedToken},
		{Name: "A128CBC-HS256", Body: header(set("enc", "A128CBC-HS256")), Code: apperr.UnsupportedToken},
		{Name: "typ-JWT", Body: header(set("typ", "JWT")), Code: apperr.UnsupportedToken},
		{Name: "cty", Body: header(set("cty", "JWT")), Code: apperr.UnsupportedToken},
		{Name: "crit", Body: header(set("crit", []string{"exp"})), Code: apperr.UnsupportedToken},
		{Name: "jku", Body: header(set("jku", "https://evil.example/keys")), Code: apperr.UnsupportedToken},
		{Name: "ver-2", Body: header(set("ver", 2)), Code: apperr.UnsupportedToken},
		{Name: "ver-missing", Body: header(func(h map[string]any) { delete(h, "ver") }), Code: apperr.UnsupportedToken},
		{Name: "duplicate-kid", Body: rawHeader(func(js string) string { return `{"kid":"k1",` + js[1:] }), Code: apperr.InvalidToken},
		{Name: "lifetime-8d", Body: header(func(h map[string]any) { h["exp"] = now.Add(8 * 24 * time.Hour).Unix(); h["iat"] = now.Unix() }), Code: apperr.InvalidToken},
		{Name: "issuer-prefix-port", Body: header(set("iss", f.URL+"0")), Code: apperr.UntrustedIssuer},
		{Name: "issuer-prefix-host", Body: header(set("iss", strings.Replace(f.URL, "127.0.0.1", "127.0.0.1.evil.example", 1))), Code: apperr.UntrustedIssuer},
		{Name: "issuer-longer-path", Body: header(set("iss", f.URL+"/evil")), Code: apperr.UntrustedIssuer},
		{Name: "issuer-https", Body: header(set("iss", strings.Replace(f.URL, "http://", "https://", 1))), Code: apperr.UntrustedIssuer},
		{Name: "issuer-other", Body: header(set("iss", "https://cloud.evil.example")), Code: apperr.UntrustedIssuer},
		{Name: "expired", Body: header(dates(now.Add(-8 * 24 * time.Hour))), Code: apperr.TokenExpired},
		{Name: "iat-future", Body: header(dates(now.Add(time.Hour))), Code: apperr.TokenNotYetValid},
		// Only the key holder can refuse these: the header is fine.
		{Name: "flipped-ciphertext", Body: flip(3), Code: apperr.InvalidToken, NeedsCloud: true},
		{Name: "flipped-tag", Body: flip(4), Code: apperr.InvalidToken, NeedsCloud: true},
		{Name: "unknown-kid", Body: header(set("kid", "k9")), Code: apperr.UnknownKey, NeedsCloud: true},
		{Name: "other-keys-same-kid", Body: []byte(f.Mint(tb, MintOptions{Keys: other, Unrecorded: true})), Code: apperr.InvalidToken, NeedsCloud: true},
		{Name: "never-issued", Body: []byte(f.Mint(tb, MintOptions{Unrecorded: true})), Code: apperr.InvalidToken, NeedsCloud: true},
	}
}
