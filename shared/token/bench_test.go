package token

import (
	"encoding/json"
	"flag"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"spacesync.io/shared/interop"
)

// The benchmarks pair each operation with go-jose alone doing the same
// work, so BENCHMARKS.md can report this package's overhead:
//
//	go test -run '^$' -bench . -benchmem -count=5 -benchtime=1s ./token
//
// and TestJoseTiming (with -jose-timing) measures npm jose on the same token.

// BenchmarkMint mints the realistic claims of testClaims.
func BenchmarkMint(b *testing.B) {
	ks := serviceKeys(b)
	c := testClaims(t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Mint(ks, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoJoseEncrypt is go-jose encrypting the same plaintext with the
// same header: the floor under BenchmarkMint.
func BenchmarkGoJoseEncrypt(b *testing.B) {
	c := testClaims(t0)
	w, err := prepare(&c)
	if err != nil {
		b.Fatal(err)
	}
	pt, _ := appendClaims(nil, &c, w)
	key := testSecret("k1")
	b.ReportAllocs()
	for b.Loop() {
		enc, err := jose.NewEncrypter(jose.A256GCM,
			jose.Recipient{Algorithm: jose.A256KW, Key: key, KeyID: "k1"},
			&jose.EncrypterOptions{ExtraHeaders: map[jose.HeaderKey]any{
				jose.HeaderType: Type, "iss": c.Issuer, "jti": c.ID, "iat": w.iat, "exp": w.exp, "ver": Version,
			}})
		if err != nil {
			b.Fatal(err)
		}
		obj, err := enc.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := obj.CompactSerialize(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead is dc-app's header-level read of a token file (with a
// trailing newline, as files have).
func BenchmarkRead(b *testing.B) {
	raw := []byte(mustMint(b, serviceKeys(b), testClaims(t0)) + "\n")
	r := testReader()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := r.Read(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is cloud-app's full check of the same file.
func BenchmarkOpen(b *testing.B) {
	raw := []byte(mustMint(b, serviceKeys(b), testClaims(t0)) + "\n")
	o := testOpener(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := o.Open(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoJoseDecrypt is go-jose alone parsing, decrypting and decoding
// the same token into the same struct: the floor under BenchmarkOpen.
func BenchmarkGoJoseDecrypt(b *testing.B) {
	tok := mustMint(b, serviceKeys(b), testClaims(t0))
	key := testSecret("k1")
	b.ReportAllocs()
	b.SetBytes(int64(len(tok) + 1))
	for b.Loop() {
		obj, err := jose.ParseEncryptedCompact(tok, keyAlgorithms, contentEncryptions)
		if err != nil {
			b.Fatal(err)
		}
		pt, err := obj.Decrypt(key)
		if err != nil {
			b.Fatal(err)
		}
		var w wireClaims
		if err := json.Unmarshal(pt, &w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead_Refused is the header-level read of a hostile token refused
// by the allow-list (PBES2), the path an attacker controls.
func BenchmarkRead_Refused(b *testing.B) {
	c := testClaims(t0)
	tok := craft(b, spec{alg: jose.PBES2_HS512_A256KW, key: "password", p2c: 1000, header: headerMap(c), plaintext: contents(b, c, nil)})
	raw := []byte(tok)
	r := testReader()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(raw); err == nil {
			b.Fatal("accepted")
		}
	}
}

var joseTiming = flag.Int("jose-timing", 0, "run TestJoseTiming with this many iterations of npm jose")

// TestJoseTiming measures npm jose decrypting (and re-encrypting) a
// Go-minted token, for the side-by-side numbers in BENCHMARKS.md:
//
//	go test -run TestJoseTiming -v ./token -jose-timing=20000
func TestJoseTiming(t *testing.T) {
	if *joseTiming <= 0 {
		t.Skip("a measurement, not a check: run with -jose-timing N")
	}
	tok := mustMint(t, serviceKeys(t), testClaims(t0))
	var out struct {
		N                int     `json:"n"`
		Node             string  `json:"node"`
		Jose             string  `json:"jose"`
		CompactDecryptNs float64 `json:"compactDecryptNs"`
		JwtDecryptNs     float64 `json:"jwtDecryptNs"`
		EncryptNs        float64 `json:"encryptNs"`
	}
	interop.Node(t, "jose_bench.mjs", map[string]any{
		"token": tok, "key": b64(testSecret("k1")), "n": *joseTiming, "currentDate": testNow.Unix(),
	}, &out)
	if out.CompactDecryptNs <= 0 || out.JwtDecryptNs <= 0 {
		t.Fatalf("no measurement: %+v", out)
	}
	t.Logf("node %s, jose %s, %d iterations, token %d bytes", out.Node, out.Jose, out.N, len(tok))
	t.Logf("compactDecrypt+JSON.parse: %.1f µs/op", out.CompactDecryptNs/1000)
	t.Logf("jwtDecrypt (with claim checks): %.1f µs/op", out.JwtDecryptNs/1000)
	t.Logf("CompactEncrypt: %.1f µs/op", out.EncryptNs/1000)
}
