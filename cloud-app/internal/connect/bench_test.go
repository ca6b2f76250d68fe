package connect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/secret"
)

// The request the benchmarks verify; interop/connect_bench.mjs measures
// atlassian-jwt on the same one.
const (
	benchSecret    = "sharedsecret-of-the-benchmark-tenant-0123456789abcdef"
	benchClientKey = "bench-client-key"
	benchAccount   = "557058:f0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b"
	benchPageQuery = "xdm_e=https%3A%2F%2Facme.atlassian.net&xdm_c=channel-space-sync&cp=%2Fwiki&lic=none&cv=1001.0.0-SNAPSHOT&tz=Europe%2FBerlin&loc=en-GB&user_id=&xdm_deprecated_addon_key_do_not_use=space-sync"
)

// benchAuthenticator returns an Authenticator whose tenant lookup is a
// real store.TenantCache over an SQLite store holding the benchmark
// tenant, already warm.
func benchAuthenticator(b *testing.B) *Authenticator {
	b.Helper()
	st := store.New(dbtest.SQLite(b, migrations.FS), nil, secret.NewKey())
	ctx := context.Background()
	if _, err := st.InstallTenant(ctx, store.Installation{ClientKey: benchClientKey, BaseURL: "https://acme.atlassian.net/wiki", SharedSecret: benchSecret}); err != nil {
		b.Fatal(err)
	}
	cache := store.NewTenantCache(st, time.Hour, 100, nil)
	if _, err := cache.TenantByClientKey(ctx, benchClientKey); err != nil {
		b.Fatal(err)
	}
	base, _ := url.Parse("https://app.example.com")
	return NewAuthenticator(cache, base, nil)
}

func benchToken(b *testing.B, qsh string) string {
	now := time.Now().Unix()
	tok, err := SignHS256(Claims{Issuer: benchClientKey, Subject: benchAccount, IssuedAt: now, ExpiresAt: now + 3600, QSH: qsh}, []byte(benchSecret))
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkVerifyContext verifies one iframe API call: Authorization: JWT
// with qsh "context-qsh", tenant from the warm cache.
func BenchmarkVerifyContext(b *testing.B) {
	a := benchAuthenticator(b)
	r := httptest.NewRequest(http.MethodGet, "/api/ui/spaces?query=eng&cursor=", nil)
	r.Header.Set("Authorization", "JWT "+benchToken(b, ContextQSH))
	ctx := context.Background()
	if _, err := a.VerifyContext(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.VerifyContext(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPage verifies one page load: the jwt query parameter and
// the computed qsh of this request, tenant from the warm cache.
func BenchmarkVerifyPage(b *testing.B) {
	a := benchAuthenticator(b)
	qsh, err := RequestQSH("GET", "/pages/space-sync", benchPageQuery, "")
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/pages/space-sync?"+benchPageQuery+"&jwt="+benchToken(b, qsh), nil)
	ctx := context.Background()
	if _, err := a.VerifyPage(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.VerifyPage(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalRequest is the qsh work of a page load alone.
func BenchmarkCanonicalRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RequestQSH("GET", "/pages/space-sync", benchPageQuery+"&jwt=x.y.z", ""); err != nil {
			b.Fatal(err)
		}
	}
}
