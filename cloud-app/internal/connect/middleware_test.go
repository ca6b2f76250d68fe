package connect

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/interop"
)

// fakeTenants is a TenantLookup over a map.
type fakeTenants map[string]*store.Tenant

func (f fakeTenants) TenantByClientKey(_ context.Context, clientKey string) (*store.Tenant, error) {
	if t, ok := f[clientKey]; ok {
		return t, nil
	}
	return nil, store.ErrNotFound
}

var testNow = time.Unix(1_800_000_000, 0)

func testTenants() fakeTenants {
	return fakeTenants{
		"ck-a":        {ID: "t-a", ClientKey: "ck-a", BaseURL: "https://a.atlassian.net/wiki", SharedSecret: store.SharedSecret("sharedsecret"), State: store.TenantEnabled},
		"ck-b":        {ID: "t-b", ClientKey: "ck-b", BaseURL: "https://b.atlassian.net/wiki", SharedSecret: store.SharedSecret("secret-of-b"), State: store.TenantInstalled},
		"ck-disabled": {ID: "t-d", ClientKey: "ck-disabled", BaseURL: "https://d.atlassian.net/wiki", SharedSecret: store.SharedSecret("secret-d"), State: store.TenantDisabled},
		"ck-gone":     {ID: "t-g", ClientKey: "ck-gone", BaseURL: "https://g.atlassian.net/wiki", SharedSecret: store.SharedSecret("secret-g"), State: store.TenantUninstalled},
	}
}

const pageQuery = "xdm_e=https%3A%2F%2Fa.atlassian.net&xdm_c=channel-space-sync&cp=%2Fwiki&lic=none&cv=1.2.3&tz=Europe%2FBerlin&loc=en-GB"

// mint signs an HS256 token for tenant ck with secret, overriding claims
// with the given keys (a nil value deletes the claim).
func mint(t testing.TB, secret string, over map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": "ck-a", "sub": "acc-1", "iat": testNow.Unix(), "exp": testNow.Unix() + 180, "qsh": ContextQSH}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return signRaw(t, map[string]string{"alg": "HS256", "typ": "JWT"}, c, nil, []byte(secret))
}

func pageQSH(t testing.TB, method, path, query string) string {
	t.Helper()
	q, err := RequestQSH(method, path, query, "")
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestAuthenticator_VerifyPage(t *testing.T) {
	base, _ := url.Parse("https://app.example.com/spacesync")
	a := NewAuthenticator(testTenants(), base, func() time.Time { return testNow })
	good := pageQSH(t, "GET", "/pages/space-sync", pageQuery)
	tests := []struct {
		name   string
		target string
		header string
		want   error
		tenant string
	}{
		{"OK", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}), "", nil, "t-a"},
		{"OK with our base path in the request", "/spacesync/pages/space-sync?jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}) + "&" + pageQuery, "", nil, "t-a"},
		{"OK, other tenant", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "secret-of-b", map[string]any{"iss": "ck-b", "qsh": good}), "", nil, "t-b"},
		{"ErrNoToken", "/pages/space-sync?" + pageQuery, "", ErrNoToken, ""},
		{"ErrNoToken, token in the header", "/pages/space-sync?" + pageQuery, "JWT " + mint(t, "sharedsecret", map[string]any{"qsh": good}), ErrNoToken, ""},
		{"ErrQSH, context token", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", nil), "", ErrQSH, ""},
		{"ErrQSH, no qsh", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": nil}), "", ErrQSH, ""},
		{"ErrQSH, parameter added", "/pages/space-sync?" + pageQuery + "&x=1&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}), "", ErrQSH, ""},
		{"ErrQSH, other path", "/pages/other?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}), "", ErrQSH, ""},
		{"ErrQSH, bad query", "/pages/space-sync?" + pageQuery + "&x=%zz&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}), "", ErrBadQuery, ""},
		{"ErrNoSubject", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good, "sub": nil}), "", ErrNoSubject, ""},
		{"ErrExpired", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good, "exp": testNow.Unix() - 60}), "", ErrExpired, ""},
		{"ErrSignature", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "wrong", map[string]any{"qsh": good}), "", ErrSignature, ""},
		{"ErrSignature, tenant B's secret claiming A", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "secret-of-b", map[string]any{"qsh": good}), "", ErrSignature, ""},
		{"ErrIssuer", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good, "iss": "ck-unknown"}), "", ErrIssuer, ""},
		{"ErrTenantState, disabled", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "secret-d", map[string]any{"qsh": good, "iss": "ck-disabled"}), "", ErrTenantState, ""},
		{"ErrTenantState, uninstalled", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "secret-g", map[string]any{"qsh": good, "iss": "ck-gone"}), "", ErrTenantState, ""},
		{"ErrMalformed, two jwt", "/pages/space-sync?" + pageQuery + "&jwt=" + mint(t, "sharedsecret", map[string]any{"qsh": good}) + "&jwt=x", "", ErrMalformed, ""},
		{"ErrAlgorithm, none", "/pages/space-sync?" + pageQuery + "&jwt=" + signRaw(t, map[string]string{"alg": "none"}, map[string]any{"iss": "ck-a", "sub": "acc-1", "exp": testNow.Unix() + 60, "qsh": good}, nil, nil) + "c2ln", "", ErrAlgorithm, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			id, err := a.VerifyPage(r.Context(), r)
			checkVerify(t, id, err, tt.want, tt.tenant)
		})
	}
}

func checkVerify(t *testing.T, id *Identity, err, want error, tenant string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got %v, want an identity", err)
		}
		if id.Tenant.ID != tenant || id.AccountID != "acc-1" {
			t.Fatalf("identity: tenant %s account %s, want %s acc-1", id.Tenant.ID, id.AccountID, tenant)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if c := apperr.CodeOf(err); c != apperr.Unauthorized {
		t.Fatalf("code %s, want unauthorized", c)
	}
}

func TestAuthenticator_VerifyContext(t *testing.T) {
	base, _ := url.Parse("https://app.example.com")
	a := NewAuthenticator(testTenants(), base, func() time.Time { return testNow })
	page := pageQSH(t, "GET", "/api/ui/spaces", "")
	tests := []struct {
		name   string
		target string
		header string
		want   error
		tenant string
	}{
		{"OK", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", nil), nil, "t-a"},
		{"OK, other tenant", "/api/ui/spaces?query=x", "JWT " + mint(t, "secret-of-b", map[string]any{"iss": "ck-b"}), nil, "t-b"},
		{"ErrNoToken", "/api/ui/spaces", "", ErrNoToken, ""},
		{"ErrNoToken, Bearer scheme", "/api/ui/spaces", "Bearer " + mint(t, "sharedsecret", nil), ErrNoToken, ""},
		{"ErrNoToken, token in the query", "/api/ui/spaces?jwt=" + mint(t, "sharedsecret", nil), "", ErrNoToken, ""},
		{"ErrNoToken, token in both", "/api/ui/spaces?jwt=" + mint(t, "sharedsecret", nil), "JWT " + mint(t, "sharedsecret", nil), ErrNoToken, ""},
		{"ErrQSH, page token", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"qsh": page}), ErrQSH, ""},
		{"ErrQSH, no qsh", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"qsh": nil}), ErrQSH, ""},
		{"ErrNoSubject", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"sub": ""}), ErrNoSubject, ""},
		{"ErrExpired", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"exp": testNow.Unix() - 31}), ErrExpired, ""},
		{"OK, expired within leeway", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"exp": testNow.Unix() - 29}), nil, "t-a"},
		{"ErrSignature, B's secret claiming A", "/api/ui/spaces", "JWT " + mint(t, "secret-of-b", nil), ErrSignature, ""},
		{"ErrIssuer", "/api/ui/spaces", "JWT " + mint(t, "sharedsecret", map[string]any{"iss": "https://a.atlassian.net"}), ErrIssuer, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			id, err := a.VerifyContext(r.Context(), r)
			checkVerify(t, id, err, tt.want, tt.tenant)
		})
	}
}

// TestAuthenticator_AtlassianJWTPageToken has atlassian-jwt compute the qsh
// of a page URL and sign the token, as Confluence would, and checks that
// VerifyPage accepts the request — and refuses it with one parameter
// changed.
func TestAuthenticator_AtlassianJWTPageToken(t *testing.T) {
	base, _ := url.Parse("https://app.example.com/spacesync")
	a := NewAuthenticator(testTenants(), base, func() time.Time { return testNow })
	target := "/spacesync/pages/space-sync?" + pageQuery + "&space_key=~557058%3Aabc&name=a+b%2Bc"
	var qsh []struct {
		QSH   string `json:"qsh"`
		Error string `json:"error"`
	}
	interop.Node(t, "connect_qsh.mjs", []corpusRequest{{"GET", "https://app.example.com" + target, "https://app.example.com/spacesync"}}, &qsh)
	if qsh[0].Error != "" {
		t.Fatal(qsh[0].Error)
	}
	var tok []nodeJWTResult
	interop.Node(t, "connect_jwt.mjs", []map[string]any{{"op": "encodeSymmetric", "secret": "sharedsecret", "payload": map[string]any{
		"iss": "ck-a", "sub": "acc-1", "iat": testNow.Unix(), "exp": testNow.Unix() + 180, "qsh": qsh[0].QSH,
	}}}, &tok)
	if tok[0].Error != "" {
		t.Fatal(tok[0].Error)
	}
	for _, tt := range []struct {
		name, target string
		want         error
	}{
		{"OK", target + "&jwt=" + tok[0].Token, nil},
		{"ErrQSH", strings.Replace(target, "lic=none", "lic=active", 1) + "&jwt=" + tok[0].Token, ErrQSH},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			id, err := a.VerifyPage(r.Context(), r)
			checkVerify(t, id, err, tt.want, "t-a")
		})
	}
}
