package token

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"spacesync.io/shared/apperr"
)

func TestHeaderReader_Read_Cases(t *testing.T) {
	r := testReader()
	for _, tc := range tokenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Read(tc.bad)
			checkRefusal(t, "bad", err, tc.read)
			checkWhy(t, err, tc.why)
			_, err = r.Read(tc.good)
			checkRefusal(t, "twin", err, "")
		})
	}
}

func TestOpener_Open_Cases(t *testing.T) {
	o := testOpener(t)
	for _, tc := range tokenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := o.Open(tc.bad)
			checkRefusal(t, "bad", err, tc.open)
			checkWhy(t, err, tc.why)
			_, err = o.Open(tc.good)
			checkRefusal(t, "twin", err, "")
		})
	}
}

// checkWhy fails if err is a refusal whose message lacks why.
func checkWhy(tb testing.TB, err error, why string) {
	tb.Helper()
	if err != nil && !strings.Contains(apperr.As(err).Message, why) {
		tb.Errorf("refused for another reason than %q: %v", why, err)
	}
}

// TestCases_CoverEveryCode makes sure the case table refuses with every code
// at each level where the code can occur. unknown_key cannot occur at the
// header level: dc-app has no keys, so it cannot know which kids exist.
func TestCases_CoverEveryCode(t *testing.T) {
	all := []apperr.Code{apperr.InvalidToken, apperr.UnsupportedToken, apperr.UntrustedIssuer,
		apperr.TokenNotYetValid, apperr.TokenExpired, apperr.PayloadTooLarge}
	read, open := map[apperr.Code]bool{}, map[apperr.Code]bool{}
	for _, tc := range tokenCases(t) {
		read[tc.read] = true
		open[tc.open] = true
	}
	for _, code := range all {
		if !read[code] {
			t.Errorf("no header-level case refuses with %s", code)
		}
		if !open[code] {
			t.Errorf("no open-level case refuses with %s", code)
		}
	}
	if !open[apperr.UnknownKey] {
		t.Errorf("no open-level case refuses with %s", apperr.UnknownKey)
	}
	if read[apperr.UnknownKey] {
		t.Errorf("the header level cannot know kids, yet a case expects %s there", apperr.UnknownKey)
	}
}

// TestCases_Cost bounds the work every input costs: allocations and bytes
// allocated per call, measured, and a generous hang guard instead of a
// wall-clock assertion. The bounds are a small multiple of the input (after
// the upload cap) plus a constant.
func TestCases_Cost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations of every case")
	}
	r, o := testReader(), testOpener(t)
	for _, tc := range tokenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			n := min(len(tc.bad), MaxUploadSize)
			read := measure(t, func() { r.Read(tc.bad) })
			if read.allocs > 8 || read.bytes > float64(n+4<<10) {
				t.Errorf("Read: %.0f allocations, %.0f bytes for %d input bytes; want at most 8 and %d", read.allocs, read.bytes, len(tc.bad), n+4<<10)
			}
			open := measure(t, func() { o.Open(tc.bad) })
			if open.allocs > 200 || open.bytes > float64(4*n+32<<10) {
				t.Errorf("Open: %.0f allocations, %.0f bytes for %d input bytes; want at most 200 and %d", open.allocs, open.bytes, len(tc.bad), 4*n+32<<10)
			}
		})
	}
}

// cost is the average allocation count and size of one call.
type cost struct{ allocs, bytes float64 }

// measure runs f like testing.AllocsPerRun (which it uses for the count)
// and also reports the bytes allocated, all under a hang guard.
func measure(tb testing.TB, f func()) cost {
	tb.Helper()
	const runs = 20
	var c cost
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.allocs = testing.AllocsPerRun(runs, f)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		var before, after runtime.MemStats
		f()
		runtime.ReadMemStats(&before)
		for range runs {
			f()
		}
		runtime.ReadMemStats(&after)
		c.bytes = float64(after.TotalAlloc-before.TotalAlloc) / runs
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		tb.Fatalf("%d calls took over a minute", 2*runs)
	}
	return c
}

func TestHeaderReader_Read_OK(t *testing.T) {
	c := testClaims(t0)
	tok := mustMint(t, serviceKeys(t), c)
	got, err := testReader().Read([]byte(wrap(tok, 64)))
	if err != nil {
		t.Fatal(err)
	}
	want := Header{KeyID: "k1", Issuer: testIssuer, ID: c.ID, IssuedAt: t0, Expiry: t0.Add(Lifetime), Version: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
}

func TestOpener_Open_OK(t *testing.T) {
	c := testClaims(t0)
	tok := mustMint(t, serviceKeys(t), c)
	got, err := testOpener(t).Open([]byte("\xEF\xBB\xBF" + wrap(tok, 76)))
	if err != nil {
		t.Fatal(err)
	}
	want := c
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Open (-want +got):\n%s", diff)
	}
}

func TestOpener_Open_NoPermissions(t *testing.T) {
	c := testClaims(t0)
	c.Sync.Permissions = nil
	c.Message = ""
	c.Site.DisplayURL = ""
	got, err := testOpener(t).Open([]byte(mustMint(t, serviceKeys(t), c)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&c, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Open (-want +got):\n%s", diff)
	}
}

// TestReaders_Leeway checks the edges of iat and exp with the default and
// a configured leeway, at both levels.
func TestReaders_Leeway(t *testing.T) {
	tok := []byte(mustMint(t, serviceKeys(t), testClaims(t0)))
	exp := t0.Add(Lifetime)
	tests := []struct {
		name   string
		now    time.Time
		leeway time.Duration
		want   apperr.Code
	}{
		{"at iat", t0, 0, ""},
		{"iat within default leeway", t0.Add(-DefaultLeeway), 0, ""},
		{"iat beyond default leeway", t0.Add(-DefaultLeeway - time.Second), 0, apperr.TokenNotYetValid},
		{"iat within leeway", t0.Add(-10 * time.Second), 10 * time.Second, ""},
		{"iat beyond leeway", t0.Add(-11 * time.Second), 10 * time.Second, apperr.TokenNotYetValid},
		{"just before exp", exp.Add(-time.Second), 0, ""},
		{"exp within default leeway", exp.Add(DefaultLeeway - time.Second), 0, ""},
		{"exp at default leeway", exp.Add(DefaultLeeway), 0, apperr.TokenExpired},
		{"exp within leeway", exp.Add(9 * time.Second), 10 * time.Second, ""},
		{"exp at leeway", exp.Add(10 * time.Second), 10 * time.Second, apperr.TokenExpired},
		{"long expired", exp.Add(30 * 24 * time.Hour), 0, apperr.TokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := func() time.Time { return tt.now }
			r := &HeaderReader{TrustedIssuers: []string{testIssuer}, Now: now, Leeway: tt.leeway}
			_, err := r.Read(tok)
			checkRefusal(t, "Read", err, tt.want)
			o := &Opener{Keys: serviceKeys(t), Issuer: testIssuer, Now: now, Leeway: tt.leeway}
			_, err = o.Open(tok)
			checkRefusal(t, "Open", err, tt.want)
		})
	}
}

func TestReaders_Messages(t *testing.T) {
	expired := []byte(mustMint(t, serviceKeys(t), testClaims(time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC))))
	_, err := testReader().Read(expired)
	want := "This token expired on 2026-12-01 14:00 UTC. Ask the source space admin for a new token."
	if got := apperr.As(err).Message; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = testOpener(t).Open(expired)
	if got := apperr.As(err).Message; got != want {
		t.Errorf("Open message %q, want %q", got, want)
	}
	// Values from the token are quoted and shortened.
	c := testClaims(t0)
	c.Issuer = "https://evil.example/" + strings.Repeat("x", 500)
	_, err = testReader().Read([]byte(mustMint(t, serviceKeys(t), c)))
	if msg := apperr.As(err).Message; strings.Contains(msg, strings.Repeat("x", 100)) || !strings.Contains(msg, `"https://evil.example/xxx`) {
		t.Errorf("untrusted issuer message %q does not quote a shortened issuer", msg)
	}
}

func TestHeaderReader_Read_NoTrustedIssuers(t *testing.T) {
	tok := []byte(mustMint(t, serviceKeys(t), testClaims(t0)))
	r := &HeaderReader{Now: func() time.Time { return testNow }}
	_, err := r.Read(tok)
	checkRefusal(t, "no trusted issuers", err, apperr.UntrustedIssuer)
	r.TrustedIssuers = []string{testIssuer}
	_, err = r.Read(tok)
	checkRefusal(t, "trusted", err, "")
}

func TestOpener_Open_Misconfigured(t *testing.T) {
	tok := []byte(mustMint(t, serviceKeys(t), testClaims(t0)))
	for _, o := range []*Opener{{Issuer: testIssuer}, {Keys: &KeySet{}, Issuer: testIssuer}, {Keys: serviceKeys(t)}} {
		if _, err := o.Open(tok); err == nil || codeOf(err) != apperr.Internal {
			t.Errorf("Open with %v and issuer %q: %v, want an internal error", o.Keys, o.Issuer, err)
		}
	}
}

// TestOpener_Open_RealClock checks the nil clock means the real one: a token
// issued now opens, one issued 8 days ago does not.
func TestOpener_Open_RealClock(t *testing.T) {
	o := &Opener{Keys: serviceKeys(t), Issuer: testIssuer}
	r := &HeaderReader{TrustedIssuers: []string{testIssuer}}
	fresh := []byte(mustMint(t, o.Keys, testClaims(time.Now())))
	old := []byte(mustMint(t, o.Keys, testClaims(time.Now().Add(-8*24*time.Hour))))
	_, err := o.Open(fresh)
	checkRefusal(t, "Open fresh", err, "")
	late, err := o.Open(old)
	checkRefusal(t, "Open old", err, apperr.TokenExpired)
	// An expired token is authentic: its claims come with the refusal, so
	// that an exact replay of an accepted redemption can still be honoured.
	if late == nil || late.ID == "" || late.RedemptionSecret == "" {
		t.Errorf("Open old: claims %+v; want the authenticated claims with token_expired", late)
	}
	future := []byte(mustMint(t, o.Keys, testClaims(time.Now().Add(time.Hour))))
	if c, err := o.Open(future); c != nil || apperr.CodeOf(err) != apperr.TokenNotYetValid {
		t.Errorf("Open future: %+v, %v; want no claims and token_not_yet_valid", c, err)
	}
	_, err = r.Read(fresh)
	checkRefusal(t, "Read fresh", err, "")
	_, err = r.Read(old)
	checkRefusal(t, "Read old", err, apperr.TokenExpired)
}

func TestSameBaseURL(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"https://cloud.example.com", "https://cloud.example.com", true},
		{"https://cloud.example.com", "https://cloud.example.com/", true},
		{"https://cloud.example.com/app", "https://cloud.example.com/app/", true},
		{"https://Cloud.Example.COM/app", "https://cloud.example.com/app", true},
		{"HTTPS://cloud.example.com/app", "https://cloud.example.com/app", true},
		{"https://cloud.example.com:443/app", "https://cloud.example.com/app", true},
		{"http://127.0.0.1:8081", "http://127.0.0.1:8081/", true},
		{"http://localhost:80", "http://localhost", true},
		{"https://cloud.example.com", "https://cloud.example.com.evil.example", false},
		{"https://cloud.example.com", "https://cloud.example.comx", false},
		{"https://cloud.example.com/app", "https://cloud.example.com/app2", false},
		{"https://cloud.example.com/app", "https://cloud.example.com/app/x", false},
		{"https://cloud.example.com/app", "https://cloud.example.com/APP", false},
		{"https://cloud.example.com/app", "https://cloud.example.com", false},
		{"https://cloud.example.com", "https://cloud.example.com:8443", false},
		{"https://cloud.example.com", "http://cloud.example.com", false},
		{"http://cloud.example.com:443", "https://cloud.example.com", false},
		{"https://cloud.example.com", "https://user@cloud.example.com", false},
		{"https://cloud.example.com", "https://cloud.example.com/?x=1", false},
		{"https://cloud.example.com", "https://cloud.example.com/?", false},
		{"https://cloud.example.com", "https://cloud.example.com/#x", false},
		{"https://cloud.example.com", "https://cloud.example.com/#", false},
		{"https://cloud.example.com", "ftp://cloud.example.com", false},
		{"https://cloud.example.com", "//cloud.example.com", false},
		{"https://cloud.example.com", "cloud.example.com", false},
		{"https://cloud.example.com", "", false},
		{"", "", false},
		{"https://cloud.example.com/a b", "https://cloud.example.com/a b", false},
		{"https://cloud.example.com\\@evil.example", "https://cloud.example.com", false},
		{"http://[::1]:8081", "http://[::1]:8081/", true},
		{"http://[::1]:8081", "http://[::1]:8082", false},
		{"http://[::1", "http://[::1", false},
		{"https://cloud.example.com:", "https://cloud.example.com:", false},
		{"https://cloud.example.com:0", "https://cloud.example.com:0", false},
		{"https://cloud.example.com:65536", "https://cloud.example.com:65536", false},
		{"https://cloud.example.com:0443", "https://cloud.example.com", true},
		{"https://cloud.exa%6Dple.com", "https://cloud.example.com", false},
		{"https://cloud.example.com/a%2Fb", "https://cloud.example.com/a/b", false},
		{"https://cloud.example.com/\u00e9", "https://cloud.example.com/\u00e9", false},
	}
	for _, tt := range tests {
		if got := SameBaseURL(tt.a, tt.b); got != tt.want {
			t.Errorf("SameBaseURL(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := SameBaseURL(tt.b, tt.a); got != tt.want {
			t.Errorf("SameBaseURL(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
