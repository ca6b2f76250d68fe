package token

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-jose/go-jose/v4"
	josecipher "github.com/go-jose/go-jose/v4/cipher"

	"spacesync.io/shared/apperr"
)

// tokenCase is one input with the outcome expected at each level, and a
// twin that differs only in the property under test and passes both.
type tokenCase struct {
	name      string
	bad, good []byte
	read      apperr.Code // HeaderReader.Read(bad) at testNow; "" means accepted
	open      apperr.Code // Opener.Open(bad) at testNow
	// why is part of the message of every refusal of bad, to show that the
	// intended check refused it rather than an earlier one.
	why string
}

// whys maps case names (or a prefix ending in a space) to their why.
var whys = map[string]string{
	"utf16": "UTF-16", "utf16-no-bom": "NUL bytes", "two-tokens": "this has 9", "percent": "'%'",
	"six-segments": "this has 6", "four-segments": "this has 4", "dots-10MB": "larger than 64 KiB",
	"dots-17KiB": "17 KiB long", "segments-20KiB": "20 KiB long", "empty": "empty", "truncated-end": "cut short",
	"truncated-half": "this has 4", "noncanonical-base64": "part 5 of 5", "empty-header": "header is empty",
	"zip-DEF-8MB": "compressed", "PBES2-huge-p2c": `"PBES2-HS512+A256KW"`, "RSA1_5": `"RSA1_5"`,
	"RSA-OAEP-256": `"RSA-OAEP-256"`, "dir": `"dir"`, "A128KW": `"A128KW"`, "A128CBC-HS256": `"A128CBC-HS256"`,
	"A256GCMKW": `"A256GCMKW"`, "typ-JWT": `type "JWT"`, "typ-missing": "no type", "cty-JWT": "content type",
	"crit": "extensions", "jku": `"jku"`, "ver-2": "version 2", "ver-2-inside": "version 2", "ver-missing": "no format version",
	"duplicate-kid": `repeats "kid"`, "escaped-name": "escapes a member name", "trailing-data": "after the JSON object",
	"fractional-iat": "not a whole number", "string-exp": "wrong type", "bad-kid": "key id", "short-jti": "its id",
	"lone-surrogate": "not well-formed", "no-iss": "no issuer", "header-exp-disagrees": "does not match",
	"lifetime-8d": "longer than 7 days", "lifetime-8d-inside": "does not match", "nbf-future": "2026-12-02 14:00 UTC",
	"aud-wrong": `meant for "space-sync-cloud"`, "aud-array": "contents", "jti-disagrees": "does not match",
	"rs-missing": "contents", "not-json": "contents", "unknown-kid": `key "k9"`, "wrong-key-same-kid": "decrypted",
	"flipped-ciphertext": "decrypted", "flipped-tag": "decrypted", "flipped-iv": "decrypted", "flipped-wrapped-key": "decrypted",
	"issuer ": "issued by", "iat-future": "2026-12-01 16:00 UTC", "expired": "expired on 2026-11-30 14:00 UTC",
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(tb testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			tb.Fatal(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// members returns the protected header of a token for c, as JSON members
// in Node's order, for hand-assembled headers.
func members(c Claims, kid string) []string {
	return []string{
		`"alg":"A256KW"`, `"enc":"A256GCM"`, `"kid":` + strconv.Quote(kid), `"typ":"` + Type + `"`,
		`"iss":` + strconv.Quote(c.Issuer), `"jti":` + strconv.Quote(c.ID),
		`"iat":` + strconv.FormatInt(c.IssuedAt.Unix(), 10), `"exp":` + strconv.FormatInt(c.IssuedAt.Add(Lifetime).Unix(), 10),
		`"ver":1`,
	}
}

// object joins JSON members into an object.
func object(m []string) string { return "{" + strings.Join(m, ",") + "}" }

// replace returns m with the member named name replaced by member (or
// removed if member is "").
func replace(m []string, name, member string) []string {
	out := make([]string, 0, len(m))
	for _, s := range m {
		if strings.HasPrefix(s, `"`+name+`":`) {
			if member != "" {
				out = append(out, member)
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// sealRaw builds a genuine A256KW/A256GCM JWE around a hand-written header,
// without go-jose's encoder, so that headers go-jose would never write
// (duplicates, escapes, odd numbers) can be tested both before and after
// decryption.
func sealRaw(tb testing.TB, rawHeader string, plaintext, secret []byte) string {
	tb.Helper()
	enc := base64.RawURLEncoding
	hdr := enc.EncodeToString([]byte(rawHeader))
	cek := make([]byte, 32)
	iv := make([]byte, 12)
	rand.Read(cek)
	rand.Read(iv)
	kek, err := aes.NewCipher(secret)
	if err != nil {
		tb.Fatal(err)
	}
	wrapped, err := josecipher.KeyWrap(kek, cek)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	sealed := gcm.Seal(nil, iv, plaintext, []byte(hdr))
	ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	return strings.Join([]string{hdr, enc.EncodeToString(wrapped), enc.EncodeToString(iv), enc.EncodeToString(ct), enc.EncodeToString(tag)}, ".")
}

// contents returns the claims JSON of c after edit changes it.
func contents(tb testing.TB, c Claims, edit func(map[string]any)) []byte {
	tb.Helper()
	w := wireMap(c)
	if edit != nil {
		edit(w)
	}
	b, err := json.Marshal(w)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// utf16LE encodes s as UTF-16LE with a byte order mark, as Windows tools
// save "Unicode" text.
func utf16LE(s string) []byte {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return out
}

// wrap breaks s into lines of n characters joined by CRLF.
func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString("\r\n")
		s = s[n:]
	}
	b.WriteString(s)
	b.WriteString("\r\n")
	return b.String()
}

// tokenCases returns every input kind the readers must handle, each built
// for real, with the codes expected at testNow. The fuzz corpus is made of
// them.
func tokenCases(tb testing.TB) []tokenCase {
	tb.Helper()
	ks := serviceKeys(tb)
	c := testClaims(t0)
	valid := mustMint(tb, ks, c)
	secret := testSecret("k1")
	var cases []tokenCase
	add := func(name string, bad, good string, read, open apperr.Code) {
		why, ok := whys[name]
		if prefix, _, cut := strings.Cut(name, " "); !ok && cut {
			why, ok = whys[prefix+" "]
		}
		if !ok && (read != "" || open != "") {
			tb.Fatalf("case %s has no why", name)
		}
		cases = append(cases, tokenCase{name: name, bad: []byte(bad), good: []byte(good), read: read, open: open, why: why})
	}
	const (
		invalid     = apperr.InvalidToken
		unknownKey  = apperr.UnknownKey
		unsupported = apperr.UnsupportedToken
		untrusted   = apperr.UntrustedIssuer
		notYet      = apperr.TokenNotYetValid
		expired     = apperr.TokenExpired
		tooLarge    = apperr.PayloadTooLarge
	)

	// The outer form.
	add("valid", valid, valid, "", "")
	add("utf16", string(utf16LE(valid+"\r\n")), "\xEF\xBB\xBF"+valid+"\r\n", invalid, invalid)
	add("utf16-no-bom", string(utf16LE(valid)[2:]), wrap(valid, 76), invalid, invalid)
	add("two-tokens", valid+"\n"+mustMint(tb, ks, c)+"\n", valid+"\n", invalid, invalid)
	p := segments(tb, valid)
	add("percent", strings.Join([]string{p[0], p[1], p[2], p[3][:10] + "%2D" + p[3][10:], p[4]}, "."), valid, invalid, invalid)
	add("six-segments", valid+".AAAA", valid, invalid, invalid)
	add("four-segments", strings.Join(p[:4], "."), valid, invalid, invalid)
	add("dots-10MB", strings.Repeat(".", 10<<20), valid+strings.Repeat(" \r\n", (MaxUploadSize-len(valid))/3), tooLarge, tooLarge)
	add("dots-17KiB", strings.Repeat(".", 17<<10), valid, invalid, invalid)
	add("segments-20KiB", strings.Join([]string{p[0], p[1], p[2], strings.Repeat("A", 20<<10), p[4]}, "."), valid, invalid, invalid)
	add("empty", " \r\n\t", valid, invalid, invalid)
	add("truncated-end", valid[:len(valid)-6], valid, invalid, invalid)
	add("truncated-half", valid[:len(valid)/2], valid, invalid, invalid)
	add("noncanonical-base64", strings.Join([]string{p[0], p[1], p[2], p[3], p[4][:21] + "B"}, "."), valid, invalid, invalid)
	add("empty-header", "."+strings.Join(p[1:], "."), valid, invalid, invalid)

	// The header allow-list, with hostile tokens made by go-jose itself.
	h := headerMap(c)
	pt := contents(tb, c, nil)
	twin := craft(tb, spec{header: h, plaintext: pt})
	big := contents(tb, c, func(w map[string]any) { w["msg"] = strings.Repeat("A", 8<<20) })
	zipped := craft(tb, spec{zip: jose.DEFLATE, header: h, plaintext: big})
	if len(zipped) > MaxTokenSize {
		tb.Fatalf("the zip token is %d bytes; it must fit MaxTokenSize to test the zip check", len(zipped))
	}
	add("zip-DEF-8MB", zipped, twin, unsupported, unsupported)
	pbes2 := craft(tb, spec{alg: jose.PBES2_HS512_A256KW, key: "correct horse battery staple", p2c: 1000, header: h, plaintext: pt})
	pbes2 = withHeader(tb, pbes2, func(m map[string]any) { m["p2c"] = 2147483647 })
	add("PBES2-huge-p2c", pbes2, twin, unsupported, unsupported)
	add("RSA1_5", craft(tb, spec{alg: jose.RSA1_5, key: &testRSAKey(tb).PublicKey, header: h, plaintext: pt}), twin, unsupported, unsupported)
	add("RSA-OAEP-256", craft(tb, spec{alg: jose.RSA_OAEP_256, key: &testRSAKey(tb).PublicKey, header: h, plaintext: pt}), twin, unsupported, unsupported)
	add("dir", craft(tb, spec{alg: jose.DIRECT, key: secret, header: h, plaintext: pt}), twin, unsupported, unsupported)
	add("A128KW", craft(tb, spec{alg: jose.A128KW, key: secret[:16], header: h, plaintext: pt}), twin, unsupported, unsupported)
	add("A128CBC-HS256", craft(tb, spec{enc: jose.A128CBC_HS256, header: h, plaintext: pt}), twin, unsupported, unsupported)
	add("A256GCMKW", craft(tb, spec{alg: jose.A256GCMKW, header: h, plaintext: pt}), twin, unsupported, unsupported)
	typJWT := craft(tb, spec{header: merge(h, map[string]any{"typ": "JWT"}), plaintext: pt})
	add("typ-JWT", typJWT, twin, unsupported, unsupported)
	add("typ-missing", craft(tb, spec{header: merge(h, map[string]any{"typ": nil}), plaintext: pt}), twin, unsupported, unsupported)
	add("cty-JWT", craft(tb, spec{header: merge(h, map[string]any{"cty": "JWT"}), plaintext: pt}), twin, unsupported, unsupported)
	add("crit", craft(tb, spec{header: merge(h, map[string]any{"crit": []string{"exp"}}), plaintext: pt}), twin, unsupported, unsupported)
	add("jku", craft(tb, spec{header: merge(h, map[string]any{"jku": "https://evil.example/keys"}), plaintext: pt}), twin, unsupported, unsupported)
	add("ver-2", craft(tb, spec{header: merge(h, map[string]any{"ver": 2}), plaintext: contents(tb, c, func(w map[string]any) { w["ver"] = 2 })}), twin, unsupported, unsupported)
	add("ver-2-inside", craft(tb, spec{header: h, plaintext: contents(tb, c, func(w map[string]any) { w["ver"] = 2 })}), twin, "", unsupported)
	add("ver-missing", craft(tb, spec{header: merge(h, map[string]any{"ver": nil}), plaintext: pt}), twin, unsupported, unsupported)

	// Hand-assembled headers, sealed for real.
	m := members(c, "k1")
	sealedTwin := sealRaw(tb, object(m), pt, secret)
	add("duplicate-kid", sealRaw(tb, object(append(replace(m, "kid", `"kid":"k9"`), `"kid":"k1"`)), pt, secret), sealedTwin, invalid, invalid)
	add("escaped-name", sealRaw(tb, object(replace(m, "kid", `"\u006bid":"k1"`)), pt, secret), sealedTwin, invalid, invalid)
	escIss := `"iss":"` + strings.ReplaceAll(testIssuer, "/", `\/`) + `"`
	add("escaped-value", sealRaw(tb, object(replace(m, "iss", escIss)), pt, secret), sealedTwin, "", "")
	add("trailing-data", sealRaw(tb, object(m)+" {}", pt, secret), sealedTwin, invalid, invalid)
	add("fractional-iat", sealRaw(tb, object(replace(m, "iat", `"iat":`+strconv.FormatInt(t0.Unix(), 10)+".0")), pt, secret), sealedTwin, invalid, invalid)
	add("string-exp", sealRaw(tb, object(replace(m, "exp", `"exp":"`+strconv.FormatInt(t0.Add(Lifetime).Unix(), 10)+`"`)), pt, secret), sealedTwin, invalid, invalid)
	add("bad-kid", sealRaw(tb, object(replace(m, "kid", `"kid":"../k1"`)), pt, secret), sealedTwin, invalid, invalid)
	add("short-jti", sealRaw(tb, object(replace(m, "jti", `"jti":"x"`)), pt, secret), sealedTwin, invalid, invalid)
	add("lone-surrogate", sealRaw(tb, object(replace(m, "iss", `"iss":"https://cloud.example.com/\ud800"`)), pt, secret), sealedTwin, invalid, invalid)
	add("no-iss", sealRaw(tb, object(replace(m, "iss", "")), pt, secret), sealedTwin, invalid, invalid)
	sixDays := strconv.FormatInt(t0.Add(6*24*time.Hour).Unix(), 10)
	add("header-exp-disagrees", sealRaw(tb, object(replace(m, "exp", `"exp":`+sixDays)), pt, secret), sealedTwin, "", invalid)
	eightDays := t0.Add(8 * 24 * time.Hour).Unix()
	long := contents(tb, c, func(w map[string]any) { w["exp"] = eightDays })
	add("lifetime-8d", sealRaw(tb, object(replace(m, "exp", `"exp":`+strconv.FormatInt(eightDays, 10))), long, secret), sealedTwin, invalid, invalid)
	add("lifetime-8d-inside", sealRaw(tb, object(m), long, secret), sealedTwin, "", invalid)

	// The encrypted claims.
	add("nbf-future", craftClaims(tb, c, func(_, w map[string]any) { w["nbf"] = t0.Add(24 * time.Hour).Unix() }), twin, "", notYet)
	add("aud-wrong", craftClaims(tb, c, func(_, w map[string]any) { w["aud"] = "space-sync-cloud" }), twin, "", invalid)
	add("aud-array", craftClaims(tb, c, func(_, w map[string]any) { w["aud"] = []string{Audience} }), twin, "", invalid)
	add("jti-disagrees", craftClaims(tb, c, func(_, w map[string]any) { w["jti"] = NewID() }), twin, "", invalid)
	add("rs-missing", craftClaims(tb, c, func(_, w map[string]any) { delete(w, "rs") }), twin, "", invalid)
	add("not-json", craft(tb, spec{header: h, plaintext: []byte("not json")}), twin, "", invalid)

	// Keys.
	other := mustKeys(tb, keyEntry("k9", "k9"))
	add("unknown-kid", mustMint(tb, other, c), valid, "", unknownKey)
	add("retired-kid", mustMint(tb, mustKeys(tb, keyEntry("k0", "k0")), c), valid, "", "")
	add("wrong-key-same-kid", mustMint(tb, mustKeys(tb, keyEntry("k1", "k9")), c), valid, "", invalid)

	// Damage that only the key holder can see.
	add("flipped-ciphertext", flipBit(tb, valid, 3, 100), valid, "", invalid)
	add("flipped-tag", flipBit(tb, valid, 4, 127), valid, "", invalid)
	add("flipped-iv", flipBit(tb, valid, 2, 0), valid, "", invalid)
	add("flipped-wrapped-key", flipBit(tb, valid, 1, 200), valid, "", invalid)

	// Issuers.
	for _, iss := range []string{
		"https://cloud.example.com/spacesync2",
		"https://cloud.example.com/spacesync/evil",
		"https://cloud.example.com.evil.example/spacesync",
		"https://cloud.example.com:8443/spacesync",
		"http://cloud.example.com/spacesync",
		"https://cloud.example.com",
	} {
		bad := c
		bad.Issuer = iss
		add("issuer "+iss, mustMint(tb, ks, bad), valid, untrusted, untrusted)
	}
	for _, iss := range []string{"https://cloud.example.com/spacesync/", "https://CLOUD.example.com:443/spacesync"} {
		ok := c
		ok.Issuer = iss
		add("issuer "+iss, mustMint(tb, ks, ok), valid, "", "")
	}

	// Time. The twins sit just inside the leeway.
	add("iat-future", mustMint(tb, ks, testClaims(testNow.Add(time.Hour))), mustMint(tb, ks, testClaims(testNow.Add(DefaultLeeway-time.Second))), notYet, notYet)
	add("expired", mustMint(tb, ks, testClaims(t0.Add(-8*24*time.Hour))), mustMint(tb, ks, testClaims(testNow.Add(-Lifetime-DefaultLeeway+time.Second))), expired, expired)
	return cases
}

// merge returns a copy of a with b's entries set (nil entries included, so
// craft removes them).
func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// fuzzSeed returns the input of a case as stored in the fuzz corpus: the
// 10 MB case is cut to just over the upload cap.
func fuzzSeed(tc tokenCase) []byte {
	if len(tc.bad) > MaxUploadSize {
		return bytes.Repeat([]byte("."), MaxUploadSize+1)
	}
	return tc.bad
}
