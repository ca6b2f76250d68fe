package token

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"spacesync.io/shared/apperr"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz from tokenCases")

// The codes each level may answer with; anything else, a panic or a
// non-apperr error is a failure.
var (
	readCodes = []apperr.Code{apperr.InvalidToken, apperr.UnsupportedToken, apperr.UntrustedIssuer,
		apperr.TokenNotYetValid, apperr.TokenExpired, apperr.PayloadTooLarge}
	openCodes = append(slices.Clone(readCodes), apperr.UnknownKey)
)

// checkFuzzRefusal fails unless err is an *apperr.Error with one of codes
// and a message.
func checkFuzzRefusal(t *testing.T, err error, codes []apperr.Code) {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) || !slices.Contains(codes, ae.Code) || ae.Message == "" {
		t.Fatalf("refusal %v (%T) is not an allowed apperr code", err, err)
	}
}

// FuzzRead checks the header reader never panics, refuses only with its
// codes, and accepts only what satisfies every header rule.
func FuzzRead(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("a.b.c.d.e"))
	r := testReader()
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := r.Read(in)
		if err != nil {
			checkFuzzRefusal(t, err, readCodes)
			return
		}
		norm, err := Normalize(in)
		if err != nil {
			t.Fatalf("Read accepted what Normalize refuses: %v", err)
		}
		if again, err := r.Read([]byte(norm)); err != nil || again != h {
			t.Fatalf("the normalised token reads as %+v, %v; want %+v", again, err, h)
		}
		switch {
		case h.Version != Version:
			t.Fatalf("accepted version %d", h.Version)
		case !h.Expiry.After(h.IssuedAt) || h.Expiry.Sub(h.IssuedAt) > Lifetime:
			t.Fatalf("accepted iat %v exp %v", h.IssuedAt, h.Expiry)
		case !trusted(h.Issuer, r.TrustedIssuers):
			t.Fatalf("accepted issuer %q", h.Issuer)
		case !validKeyID(h.KeyID) || !validTokenID(h.ID):
			t.Fatalf("accepted kid %q jti %q", h.KeyID, h.ID)
		case testNow.Add(DefaultLeeway).Before(h.IssuedAt) || !testNow.Add(-DefaultLeeway).Before(h.Expiry):
			t.Fatalf("accepted iat %v exp %v at %v", h.IssuedAt, h.Expiry, testNow)
		}
	})
}

// FuzzOpen checks the opener never panics, refuses only with its codes,
// agrees with the header reader, and accepts only claims that satisfy every
// rule.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("a.b.c.d.e"))
	o, r := testOpener(f), testReader()
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := o.Open(in)
		h, rerr := r.Read(in)
		if err != nil {
			checkFuzzRefusal(t, err, openCodes)
			// Both levels run the same checks first, so a refusal there is
			// the same refusal here.
			switch code := codeOf(rerr); code {
			case apperr.InvalidToken, apperr.UnsupportedToken, apperr.PayloadTooLarge:
				if codeOf(err) != code {
					t.Fatalf("Read refused with %v, but Open with %v", rerr, err)
				}
			}
			return
		}
		if rerr != nil {
			t.Fatalf("Open accepted what Read refuses: %v", rerr)
		}
		if h.ID != c.ID || h.Issuer != c.Issuer || !h.IssuedAt.Equal(c.IssuedAt) || !h.Expiry.Equal(c.Expiry) || h.KeyID == "" {
			t.Fatalf("header %+v disagrees with claims %+v", h, c)
		}
		w := wireTimes{iat: c.IssuedAt.Unix(), nbf: c.NotBefore.Unix(), exp: c.Expiry.Unix()}
		if _, problem := checkClaims(c, w); problem != "" || c.Audience != Audience || c.Version != Version {
			t.Fatalf("accepted claims that fail a rule (%s): %+v", problem, c)
		}
	})
}

// TestFuzzCorpus keeps the committed seed corpora meaningful: every case of
// tokenCases is a seed of both targets, and each seed still gets its
// expected answer. With -update-corpus it rewrites them.
func TestFuzzCorpus(t *testing.T) {
	cases := tokenCases(t)
	targets := []struct {
		name  string
		level func(tokenCase) apperr.Code
		run   func([]byte) error
	}{
		{"FuzzRead", func(tc tokenCase) apperr.Code { return tc.read }, func(in []byte) error { _, err := testReader().Read(in); return err }},
		{"FuzzOpen", func(tc tokenCase) apperr.Code { return tc.open }, func(in []byte) error { _, err := testOpener(t).Open(in); return err }},
	}
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target.name)
		if *updateCorpus {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(fuzzSeed(tc))) + ")\n"
				if err := os.WriteFile(filepath.Join(dir, seedName(tc.name)), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range cases {
			in := readSeed(t, filepath.Join(dir, seedName(tc.name)))
			if in == nil {
				continue
			}
			err := target.run(in)
			checkRefusal(t, target.name+"/"+tc.name, err, target.level(tc))
			checkWhy(t, err, tc.why)
		}
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func seedName(caseName string) string { return unsafeName.ReplaceAllString(caseName, "_") }

// readSeed reads one seed file of the corpus, failing the test if it is
// missing or not in the format `go test fuzz v1` + one []byte.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("seed missing (run go test -run TestFuzzCorpus -update-corpus): %v", err)
		return nil
	}
	body, ok := strings.CutPrefix(string(data), "go test fuzz v1\n[]byte(")
	body, ok2 := strings.CutSuffix(body, ")\n")
	if !ok || !ok2 {
		t.Errorf("%s: not a one-[]byte fuzz corpus file", path)
		return nil
	}
	s, err := strconv.Unquote(body)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return nil
	}
	return []byte(s)
}
