package web

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/interop"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Helpers for the Connect tests. Names start with cn so they do not
// collide with other handlers' test helpers.

const (
	cnBaseURL = "https://app.example.com"
	cnAppKey  = "space-sync-test"
	cnKid     = "kid-1"
)

// cnKeys are the install-keys service's signing key and an unrelated one.
var (
	cnSigningKey = sync.OnceValue(func() *rsa.PrivateKey { return cnGenerateKey() })
	cnOtherKey   = sync.OnceValue(func() *rsa.PrivateKey { return cnGenerateKey() })
)

func cnGenerateKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// cnLogs is a log sink safe for concurrent writes.
type cnLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *cnLogs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *cnLogs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// cnEnv is the real app (the real route table) over a fresh database, with
// an httptest install-keys service serving the signing key as kid-1.
type cnEnv struct {
	t       *testing.T
	app     *App
	db      *db.DB
	now     time.Time
	logs    *cnLogs
	fetches atomic.Int64
}

func newCnEnv(t *testing.T, d *db.DB) *cnEnv {
	t.Helper()
	e := &cnEnv{t: t, db: d, now: time.Now().UTC().Truncate(time.Second), logs: &cnLogs{}}
	der, err := x509.MarshalPKIXPublicKey(&cnSigningKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.fetches.Add(1)
		if r.URL.Path == "/kid-broken" {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if r.URL.Path != "/"+cnKid {
			http.NotFound(w, r)
			return
		}
		w.Write(bytes.ReplaceAll(pemKey, []byte("\n"), []byte("\r\n"))) // CRLF, as some services send
	}))
	t.Cleanup(keySrv.Close)
	keys, err := token.GenerateKeySet("k1")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CLOUD_APP_BASE_URL":         cnBaseURL,
		"CLOUD_APP_KEY":              cnAppKey,
		"CLOUD_APP_INSTALL_KEYS_URL": keySrv.URL,
		"CLOUD_APP_PRODUCT_HOSTS":    "*.atlassian.net,localhost",
		"CLOUD_APP_DATA_DIR":         t.TempDir(),
		"SPACESYNC_TOKEN_KEYS":       keys.Encode(),
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := New(ctx, Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
		DB: d, SecretKey: secret.NewKey(), TokenKeys: keys, Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.app = app
	t.Cleanup(func() { cancel(); app.Close() })
	return e
}

// cnPayload is a lifecycle body.
func cnPayload(event, clientKey, secret, baseURL string) map[string]any {
	return map[string]any{
		"key": cnAppKey, "clientKey": clientKey, "sharedSecret": secret, "baseUrl": baseURL,
		"displayUrl": "https://wiki.acme.example", "productType": "confluence", "description": "Acme",
		"serviceEntitlementNumber": "SEN-1", "eventType": event,
	}
}

// cnQSH is the qsh of a request, hashed here from the literal canonical
// form so that these tests do not rely on connect's canonicaliser.
func cnQSH(canonical string) string {
	s := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(s[:])
}

// cnSign builds a compact JWS: RS256 with key, HS256 with secret, or
// alg none.
func cnSign(header, claims map[string]any, key *rsa.PrivateKey, secret string) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	in := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	switch {
	case key != nil:
		sum := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			panic(err)
		}
		return in + "." + enc.EncodeToString(sig)
	case secret != "":
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(in))
		return in + "." + enc.EncodeToString(m.Sum(nil))
	}
	return in + ".bm9uZQ"
}

// installClaims are the claims of a signed installed/uninstalled call.
func (e *cnEnv) installClaims(event, clientKey string) map[string]any {
	return map[string]any{
		"iss": clientKey, "aud": []string{cnBaseURL}, "iat": e.now.Unix(), "exp": e.now.Unix() + 180,
		"qsh": cnQSH("POST&/lifecycle/" + event + "&"),
	}
}

func (e *cnEnv) signedToken(event, clientKey string) string {
	return cnSign(map[string]any{"alg": "RS256", "typ": "JWT", "kid": cnKid}, e.installClaims(event, clientKey), cnSigningKey(), "")
}

// sharedToken is an HS256 lifecycle token for enabled/disabled.
func (e *cnEnv) sharedToken(event, clientKey, secret string) string {
	return cnSign(map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{
		"iss": clientKey, "iat": e.now.Unix(), "exp": e.now.Unix() + 180, "qsh": cnQSH("POST&/lifecycle/" + event + "&"),
	}, nil, secret)
}

// post sends a lifecycle callback through the real route table.
func (e *cnEnv) post(event, authorization string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/lifecycle/"+event, bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	e.app.Server.ServeHTTP(w, r)
	return w
}

func (e *cnEnv) install(clientKey, secret string) {
	e.t.Helper()
	w := e.post("installed", "JWT "+e.signedToken("installed", clientKey), cnPayload("installed", clientKey, secret, "https://acme.atlassian.net/wiki"))
	if w.Code != http.StatusNoContent {
		e.t.Fatalf("install %s: %d %s", clientKey, w.Code, w.Body)
	}
}

func (e *cnEnv) tenant(clientKey string) *store.Tenant {
	e.t.Helper()
	t, err := e.app.store.TenantByClientKey(context.Background(), clientKey)
	if err != nil {
		e.t.Fatalf("tenant %s: %v", clientKey, err)
	}
	return t
}

func (e *cnEnv) countTenants() int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Raw(`SELECT COUNT(*) FROM tenants`).Scan(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}

func cnCode(t *testing.T, w *httptest.ResponseRecorder) apperr.Code {
	t.Helper()
	var b apperr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	return b.Error.Code
}

// TestLifecycle_Installed_Refusals drives every refusal of a signed
// install through the real route table: each one is refused with nothing
// stored, and the passing twin stores the tenant.
func TestLifecycle_Installed_Refusals(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		const ck = "ck-acme"
		const good = "https://acme.atlassian.net/wiki"
		type tc struct {
			name      string
			auth      func(e *cnEnv) string
			body      map[string]any
			status    int
			code      apperr.Code
			symmetric bool
			fetches   int64 // key fetches the case may make; -1 means any
		}
		rs := func(e *cnEnv, edit func(h, c map[string]any), key *rsa.PrivateKey) string {
			h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": cnKid}
			c := e.installClaims("installed", ck)
			edit(h, c)
			return "JWT " + cnSign(h, c, key, "")
		}
		body := cnPayload("installed", ck, "the-shared-secret-0123456789abcdef", good)
		with := func(k string, v any) map[string]any {
			b := map[string]any{}
			for kk, vv := range body {
				b[kk] = vv
			}
			b[k] = v
			return b
		}
		cases := []tc{
			{name: "OK", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: body, status: 204, fetches: -1},
			{name: "missing header", auth: func(e *cnEnv) string { return "" }, body: body, status: 401, code: apperr.Unauthorized},
			{name: "Bearer scheme", auth: func(e *cnEnv) string {
				return strings.Replace(rs(e, func(h, c map[string]any) {}, cnSigningKey()), "JWT", "Bearer", 1)
			}, body: body, status: 401, code: apperr.Unauthorized},
			{name: "wrong aud", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { c["aud"] = []string{"https://other.example.com"} }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "no aud", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) { delete(c, "aud") }, cnSigningKey()) }, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "iss is not the clientKey", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { c["iss"] = "ck-other" }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "unknown kid", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { h["kid"] = "kid-unknown" }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: 1},
			{name: "bad kid pattern", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { h["kid"] = "../" + cnKid }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: 0},
			{name: "kid with a query", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { h["kid"] = cnKid + "?x=1" }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: 0},
			{name: "key service down", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { h["kid"] = "kid-broken" }, cnSigningKey())
			}, body: body, status: 503, code: apperr.Unavailable, fetches: 1},
			{name: "no kid", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) { delete(h, "kid") }, cnSigningKey()) }, body: body, status: 401, code: apperr.Unauthorized, fetches: 0},
			{name: "signed by another key", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnOtherKey()) }, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "HS256 where RS256 is required", auth: func(e *cnEnv) string {
				return "JWT " + cnSign(map[string]any{"alg": "HS256", "typ": "JWT", "kid": cnKid}, e.installClaims("installed", ck), nil, "the-shared-secret-0123456789abcdef")
			}, body: body, status: 401, code: apperr.Unauthorized, symmetric: true},
			{name: "alg none", auth: func(e *cnEnv) string {
				return "JWT " + cnSign(map[string]any{"alg": "none", "kid": cnKid}, e.installClaims("installed", ck), nil, "")
			}, body: body, status: 401, code: apperr.Unauthorized},
			{name: "wrong qsh", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { c["qsh"] = cnQSH("POST&/lifecycle/uninstalled&") }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "context-qsh", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { c["qsh"] = "context-qsh" }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "no qsh", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) { delete(c, "qsh") }, cnSigningKey()) }, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "expired", auth: func(e *cnEnv) string {
				return rs(e, func(h, c map[string]any) { c["exp"] = e.now.Unix() - 120; c["iat"] = e.now.Unix() - 300 }, cnSigningKey())
			}, body: body, status: 401, code: apperr.Unauthorized, fetches: -1},
			{name: "disallowed host", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("baseUrl", "https://acme.evil.example/wiki"), status: 403, code: apperr.Forbidden, fetches: 0},
			{name: "look-alike host", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("baseUrl", "https://atlassian.net.evil.example/wiki"), status: 403, code: apperr.Forbidden, fetches: 0},
			{name: "plain http product host", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("baseUrl", "http://acme.atlassian.net/wiki"), status: 403, code: apperr.Forbidden, fetches: 0},
			{name: "another app's key", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("key", "someone-else"), status: 401, code: apperr.Unauthorized, fetches: 0},
			{name: "eventType of another callback", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("eventType", "uninstalled"), status: 401, code: apperr.Unauthorized, fetches: 0},
			{name: "no shared secret", auth: func(e *cnEnv) string { return rs(e, func(h, c map[string]any) {}, cnSigningKey()) }, body: with("sharedSecret", ""), status: 401, code: apperr.Unauthorized, fetches: -1},
		}
		for _, tt := range cases {
			t.Run(tt.name, func(t *testing.T) {
				e := newCnEnv(t, d)
				_ = e.db.Exec(`DELETE FROM tenants`) // each case starts empty
				w := e.post("installed", tt.auth(e), tt.body)
				if w.Code != tt.status {
					t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
				}
				if tt.status == 204 {
					tn := e.tenant(ck)
					if tn.BaseURL != good || string(tn.SharedSecret) != "the-shared-secret-0123456789abcdef" || tn.DisplayURL != "https://wiki.acme.example" {
						t.Fatalf("stored: %+v", tn)
					}
					return
				}
				if c := cnCode(t, w); c != tt.code {
					t.Errorf("code %s, want %s", c, tt.code)
				}
				if n := e.countTenants(); n != 0 {
					t.Errorf("a refused callback stored %d tenants", n)
				}
				if got := w.Header().Get("X-Unexpected-Symmetric-Hook") == "true"; got != tt.symmetric {
					t.Errorf("x-unexpected-symmetric-hook: %v, want %v", got, tt.symmetric)
				}
				if tt.fetches >= 0 && e.fetches.Load() != tt.fetches {
					t.Errorf("key fetches: %d, want %d", e.fetches.Load(), tt.fetches)
				}
				if strings.Contains(e.logs.String(), "the-shared-secret") {
					t.Error("the shared secret reached the log")
				}
			})
		}
	})
}

func TestLifecycle_Uninstalled(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newCnEnv(t, d)
		e.install("ck-1", "secret-one-0123456789")
		before := e.tenant("ck-1")
		// Refused: wrong aud, iss of another tenant, HS256.
		for name, auth := range map[string]string{
			"wrong aud": "JWT " + cnSign(map[string]any{"alg": "RS256", "kid": cnKid}, func() map[string]any {
				c := e.installClaims("uninstalled", "ck-1")
				c["aud"] = "https://other.example.com"
				return c
			}(), cnSigningKey(), ""),
			"token for the installed callback": "JWT " + e.signedToken("installed", "ck-1"),
			"HS256 with the shared secret":     "JWT " + cnSign(map[string]any{"alg": "HS256"}, e.installClaims("uninstalled", "ck-1"), nil, "secret-one-0123456789"),
			"missing header":                   "",
		} {
			w := e.post("uninstalled", auth, cnPayload("uninstalled", "ck-1", "", "https://acme.atlassian.net/wiki"))
			if w.Code != 401 {
				t.Fatalf("%s: status %d, want 401", name, w.Code)
			}
			if got := e.tenant("ck-1"); got.State != before.State || got.EventSeq != before.EventSeq {
				t.Fatalf("%s: a refused uninstall changed the tenant: %+v", name, got)
			}
		}
		// The twin.
		w := e.post("uninstalled", "JWT "+e.signedToken("uninstalled", "ck-1"), cnPayload("uninstalled", "ck-1", "", "https://acme.atlassian.net/wiki"))
		if w.Code != 204 {
			t.Fatalf("uninstall: %d %s", w.Code, w.Body)
		}
		if got := e.tenant("ck-1"); got.State != store.TenantUninstalled || got.ID != before.ID {
			t.Fatalf("after uninstall: %+v", got)
		}
		// An unknown tenant's uninstall is answered 204 and stores nothing.
		w = e.post("uninstalled", "JWT "+e.signedToken("uninstalled", "ck-unknown"), cnPayload("uninstalled", "ck-unknown", "", "https://acme.atlassian.net/wiki"))
		if w.Code != 204 || e.countTenants() != 1 {
			t.Fatalf("unknown uninstall: %d, %d tenants", w.Code, e.countTenants())
		}
	})
}

func TestLifecycle_EnabledDisabled(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newCnEnv(t, d)
		const secretA = "sharedsecret" // short secrets must work (go-jose would refuse them)
		e.install("ck-1", secretA)
		e.install("ck-2", "secret-of-tenant-two")
		body := func(ev, ck string) map[string]any { return cnPayload(ev, ck, "", "https://acme.atlassian.net/wiki") }
		refusals := []struct {
			name string
			auth string
			body map[string]any
		}{
			{"missing header", "", body("enabled", "ck-1")},
			{"wrong secret", "JWT " + e.sharedToken("enabled", "ck-1", "sharedsecreT"), body("enabled", "ck-1")},
			{"tenant 2's secret claiming tenant 1", "JWT " + e.sharedToken("enabled", "ck-1", "secret-of-tenant-two"), body("enabled", "ck-1")},
			{"tenant 2's token for tenant 1's body", "JWT " + e.sharedToken("enabled", "ck-2", "secret-of-tenant-two"), body("enabled", "ck-1")},
			{"unknown iss", "JWT " + e.sharedToken("enabled", "ck-x", secretA), body("enabled", "ck-x")},
			{"wrong qsh", "JWT " + e.sharedToken("disabled", "ck-1", secretA), body("enabled", "ck-1")},
			{"RS256", "JWT " + e.signedToken("enabled", "ck-1"), body("enabled", "ck-1")},
			{"expired", "JWT " + cnSign(map[string]any{"alg": "HS256"}, map[string]any{"iss": "ck-1", "exp": e.now.Unix() - 100, "qsh": cnQSH("POST&/lifecycle/enabled&")}, nil, secretA), body("enabled", "ck-1")},
		}
		for _, tt := range refusals {
			w := e.post("enabled", tt.auth, tt.body)
			if w.Code != 401 || cnCode(t, w) != apperr.Unauthorized {
				t.Fatalf("%s: status %d %s, want 401 unauthorized", tt.name, w.Code, w.Body)
			}
			if got := e.tenant("ck-1"); got.State != store.TenantInstalled || got.EventSeq != 1 {
				t.Fatalf("%s: refused callback changed the tenant: %s", tt.name, got.State)
			}
		}
		for _, ev := range []string{"enabled", "disabled", "enabled"} {
			if w := e.post(ev, "JWT "+e.sharedToken(ev, "ck-1", secretA), body(ev, "ck-1")); w.Code != 204 {
				t.Fatalf("%s: %d %s", ev, w.Code, w.Body)
			}
			if got := e.tenant("ck-1").State; string(got) != ev {
				t.Fatalf("after %s: state %s", ev, got)
			}
		}
		if got := e.tenant("ck-2").State; got != store.TenantInstalled {
			t.Fatalf("tenant 2 changed: %s", got)
		}
	})
}

// TestLifecycle_SecretRotation: after a reinstall with a new secret, the
// old secret is refused and the new one accepted, for lifecycle calls and
// for iframe API calls (the tenant cache is invalidated).
func TestLifecycle_SecretRotation(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newCnEnv(t, d)
		e.addTestRoutes()
		e.install("ck-1", "old-secret-0123456789")
		if w := e.get("/api/ui/test", e.contextToken("ck-1", "old-secret-0123456789", "acc-1"), ""); w.Code != 200 {
			t.Fatalf("old secret before rotation: %d", w.Code)
		}
		e.install("ck-1", "new-secret-0123456789")
		body := cnPayload("enabled", "ck-1", "", "https://acme.atlassian.net/wiki")
		if w := e.post("enabled", "JWT "+e.sharedToken("enabled", "ck-1", "old-secret-0123456789"), body); w.Code != 401 {
			t.Fatalf("old secret after rotation: %d, want 401", w.Code)
		}
		if w := e.get("/api/ui/test", e.contextToken("ck-1", "old-secret-0123456789", "acc-1"), ""); w.Code != 401 {
			t.Fatalf("old secret on the API after rotation: %d, want 401", w.Code)
		}
		if w := e.post("enabled", "JWT "+e.sharedToken("enabled", "ck-1", "new-secret-0123456789"), body); w.Code != 204 {
			t.Fatalf("new secret: %d %s", w.Code, w.Body)
		}
		if w := e.get("/api/ui/test", e.contextToken("ck-1", "new-secret-0123456789", "acc-1"), ""); w.Code != 200 {
			t.Fatalf("new secret on the API: %d", w.Code)
		}
	})
}

// TestLifecycle_Races sends disabled and uninstalled concurrently, 100
// times on each database (issue 8: the tenant always ends uninstalled), and
// installed right after uninstalled, through the real route table.
func TestLifecycle_Races(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newCnEnv(t, d)
		e.addTestRoutes()
		for i := range 100 {
			ck := fmt.Sprintf("ck-%d", i)
			e.install(ck, "secret-"+ck+"-0123456789")
			var wg sync.WaitGroup
			codes := make([]int, 2)
			wg.Add(2)
			go func() {
				defer wg.Done()
				codes[0] = e.post("disabled", "JWT "+e.sharedToken("disabled", ck, "secret-"+ck+"-0123456789"), cnPayload("disabled", ck, "", "https://acme.atlassian.net/wiki")).Code
			}()
			go func() {
				defer wg.Done()
				codes[1] = e.post("uninstalled", "JWT "+e.signedToken("uninstalled", ck), cnPayload("uninstalled", ck, "", "https://acme.atlassian.net/wiki")).Code
			}()
			wg.Wait()
			if codes[0] != 204 || codes[1] != 204 {
				t.Fatalf("round %d: statuses %v, want 204 204", i, codes)
			}
			if got := e.tenant(ck).State; got != store.TenantUninstalled {
				t.Fatalf("round %d: ended %s, want uninstalled", i, got)
			}
			if w := e.get("/api/ui/test", e.contextToken(ck, "secret-"+ck+"-0123456789", "acc-1"), ""); w.Code != 401 {
				t.Fatalf("round %d: an uninstalled tenant's token: %d, want 401", i, w.Code)
			}
			e.install(ck, "fresh-"+ck+"-0123456789")
			if got := e.tenant(ck); got.State != store.TenantInstalled || string(got.SharedSecret) != "fresh-"+ck+"-0123456789" {
				t.Fatalf("round %d: installed after uninstalled: %s", i, got.State)
			}
			if w := e.get("/api/ui/test", e.contextToken(ck, "fresh-"+ck+"-0123456789", "acc-1"), ""); w.Code != 200 {
				t.Fatalf("round %d: the reinstalled tenant's token: %d, want 200", i, w.Code)
			}
		}
	})
}

// addTestRoutes adds a page route and an iframe API route behind the real
// middlewares, answering the identity they found.
func (e *cnEnv) addTestRoutes() {
	who := func(c echo.Context) error {
		id, err := connect.IdentityFrom(c)
		if err != nil {
			return err
		}
		return c.JSON(200, map[string]string{"tenant": id.Tenant.ClientKey, "account": id.AccountID})
	}
	e.app.Server.GET("/pages/test", who, e.app.auth.Page())
	e.app.Server.GET("/api/ui/test", who, e.app.auth.Context())
	e.app.Server.GET("/api/ui/no-auth", who)
	e.app.Server.GET("/pages/headers", func(c echo.Context) error {
		t, err := e.app.store.TenantByClientKey(c.Request().Context(), c.QueryParam("ck"))
		if err != nil {
			return err
		}
		e.app.setPageHeaders(c, t)
		return c.HTML(200, "<p>ok</p>")
	})
}

func (e *cnEnv) contextToken(ck, secret, sub string) string {
	c := map[string]any{"iss": ck, "iat": e.now.Unix(), "exp": e.now.Unix() + 180, "qsh": "context-qsh"}
	if sub != "" {
		c["sub"] = sub
	}
	return cnSign(map[string]any{"alg": "HS256", "typ": "JWT"}, c, nil, secret)
}

func (e *cnEnv) pageToken(ck, secret, sub, canonical string) string {
	c := map[string]any{"iss": ck, "iat": e.now.Unix(), "exp": e.now.Unix() + 180}
	if canonical != "" {
		c["qsh"] = cnQSH(canonical)
	}
	if sub != "" {
		c["sub"] = sub
	}
	return cnSign(map[string]any{"alg": "HS256", "typ": "JWT"}, c, nil, secret)
}

// get sends GET target with an optional Authorization: JWT header and an
// optional jwt query parameter.
func (e *cnEnv) get(target, headerToken, queryToken string) *httptest.ResponseRecorder {
	if queryToken != "" {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "jwt=" + queryToken
	}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if headerToken != "" {
		r.Header.Set("Authorization", "JWT "+headerToken)
	}
	w := httptest.NewRecorder()
	e.app.Server.ServeHTTP(w, r)
	return w
}

// TestConnectAuth_Matrix checks each token kind on each route kind through
// the real server: a page token only opens pages, a context token only
// the iframe API, and tokens without qsh or sub open nothing.
func TestConnectAuth_Matrix(t *testing.T) {
	e := newCnEnv(t, dbtest.SQLite(t, migrations.FS))
	e.addTestRoutes()
	const sa, sb = "sharedsecret", "secret-of-tenant-b-0123456789"
	e.install("ck-a", sa)
	e.install("ck-b", sb)
	const q = "xdm_e=https%3A%2F%2Facme.atlassian.net&cp=%2Fwiki&lic=none"
	pageCanon := "GET&/pages/test&cp=%2Fwiki&lic=none&xdm_e=https%3A%2F%2Facme.atlassian.net"
	apiCanon := "GET&/api/ui/test&"
	tests := []struct {
		name          string
		target        string
		header, query string
		status        int
		tenant        string
	}{
		{"page token on the page", "/pages/test?" + q, "", e.pageToken("ck-a", sa, "acc-1", pageCanon), 200, "ck-a"},
		{"page token of tenant B on the page", "/pages/test?" + q, "", e.pageToken("ck-b", sb, "acc-1", pageCanon), 200, "ck-b"},
		{"page token in the header of the page", "/pages/test?" + q, e.pageToken("ck-a", sa, "acc-1", pageCanon), "", 401, ""},
		{"context token on the page", "/pages/test?" + q, "", e.contextToken("ck-a", sa, "acc-1"), 401, ""},
		{"context token in the header of the page", "/pages/test?" + q, e.contextToken("ck-a", sa, "acc-1"), "", 401, ""},
		{"no qsh on the page", "/pages/test?" + q, "", e.pageToken("ck-a", sa, "acc-1", ""), 401, ""},
		{"no sub on the page", "/pages/test?" + q, "", e.pageToken("ck-a", sa, "", pageCanon), 401, ""},
		{"page token for other parameters", "/pages/test?" + q + "&lic=active", "", e.pageToken("ck-a", sa, "acc-1", pageCanon), 401, ""},
		{"context token on the API", "/api/ui/test", e.contextToken("ck-a", sa, "acc-1"), "", 200, "ck-a"},
		{"context token of tenant B on the API", "/api/ui/test", e.contextToken("ck-b", sb, "acc-9"), "", 200, "ck-b"},
		{"page token on the API", "/api/ui/test", e.pageToken("ck-a", sa, "acc-1", apiCanon), "", 401, ""},
		{"context token in the query of the API", "/api/ui/test", "", e.contextToken("ck-a", sa, "acc-1"), 401, ""},
		{"no qsh on the API", "/api/ui/test", e.pageToken("ck-a", sa, "acc-1", ""), "", 401, ""},
		{"no sub on the API", "/api/ui/test", e.contextToken("ck-a", sa, ""), "", 401, ""},
		{"tenant B's secret claiming tenant A", "/api/ui/test", e.contextToken("ck-a", sb, "acc-1"), "", 401, ""},
		{"tenant B's key as iss, A's secret", "/api/ui/test", e.contextToken("ck-b", sa, "acc-1"), "", 401, ""},
		{"no token", "/api/ui/test", "", "", 401, ""},
		{"IdentityFrom without the middleware", "/api/ui/no-auth", e.contextToken("ck-a", sa, "acc-1"), "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get(tt.target, tt.header, tt.query)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 {
				if c := cnCode(t, w); c != apperr.Unauthorized {
					t.Fatalf("code %s, want unauthorized", c)
				}
				return
			}
			var got map[string]string
			json.Unmarshal(w.Body.Bytes(), &got)
			if got["tenant"] != tt.tenant {
				t.Fatalf("acting as %q, want %q", got["tenant"], tt.tenant)
			}
		})
	}
}

// TestConnectAuth_JWTNotLogged checks that the access log keeps the jwt
// query parameter out.
func TestConnectAuth_JWTNotLogged(t *testing.T) {
	e := newCnEnv(t, dbtest.SQLite(t, migrations.FS))
	e.addTestRoutes()
	e.install("ck-a", "sharedsecret")
	tok := e.pageToken("ck-a", "sharedsecret", "acc-1", "GET&/pages/test&x=1")
	if w := e.get("/pages/test?x=1", "", tok); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if w := e.get("/pages/test?x=2", "", tok); w.Code != 401 {
		t.Fatalf("refused twin: status %d", w.Code)
	}
	logs := e.logs.String()
	sig := tok[strings.LastIndex(tok, ".")+1:]
	if strings.Contains(logs, sig) || strings.Contains(logs, tok[:20]) {
		t.Fatalf("the token reached the log:\n%s", logs)
	}
	if !strings.Contains(logs, "jwt=REDACTED") || !strings.Contains(logs, "/pages/test") {
		t.Fatalf("twin: the request was not logged with a redacted jwt:\n%s", logs)
	}
}

func TestPageHeaders(t *testing.T) {
	e := newCnEnv(t, dbtest.SQLite(t, migrations.FS))
	e.addTestRoutes()
	e.install("ck-a", "sharedsecret")
	// A dev-stack tenant on a loopback host.
	w := e.post("installed", "JWT "+e.signedToken("installed", "ck-dev"), cnPayload("installed", "ck-dev", "s", "http://localhost:8080/wiki"))
	if w.Code != 204 {
		t.Fatalf("loopback install: %d %s", w.Code, w.Body)
	}
	tests := []struct {
		ck            string
		wantAncestors []string
		wantScripts   []string
		notScripts    []string
		allJS         string
	}{
		{"ck-a", []string{"https://acme.atlassian.net", "https://wiki.acme.example", "https://*.atlassian.net", "https://localhost"},
			[]string{"'self'", "https://connect-cdn.atl-paas.net"}, []string{"http://localhost:8080"}, "https://connect-cdn.atl-paas.net/all.js"},
		{"ck-dev", []string{"http://localhost:8080", "https://*.atlassian.net"},
			[]string{"https://connect-cdn.atl-paas.net", "http://localhost:8080"}, nil, "http://localhost:8080/atlassian-connect/all.js"},
	}
	for _, tt := range tests {
		t.Run(tt.ck, func(t *testing.T) {
			w := e.get("/pages/headers?ck="+tt.ck, "", "")
			h := w.Header()
			if w.Code != 200 || h.Get("X-Frame-Options") != "" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d headers %v", w.Code, h)
			}
			csp := h.Get("Content-Security-Policy")
			directive := func(name string) []string {
				for _, d := range strings.Split(csp, ";") {
					f := strings.Fields(d)
					if len(f) > 0 && f[0] == name {
						return f[1:]
					}
				}
				return nil
			}
			has := func(list []string, v string) bool {
				for _, x := range list {
					if x == v {
						return true
					}
				}
				return false
			}
			for _, a := range tt.wantAncestors {
				if !has(directive("frame-ancestors"), a) {
					t.Errorf("frame-ancestors lacks %s: %s", a, csp)
				}
			}
			for _, s := range tt.wantScripts {
				if !has(directive("script-src"), s) {
					t.Errorf("script-src lacks %s: %s", s, csp)
				}
			}
			for _, s := range tt.notScripts {
				if has(directive("script-src"), s) {
					t.Errorf("script-src has %s: %s", s, csp)
				}
			}
			if got := e.app.allJSURL(e.tenant(tt.ck)); got != tt.allJS {
				t.Errorf("allJSURL: %s, want %s", got, tt.allJS)
			}
		})
	}
}

func TestDescriptor(t *testing.T) {
	e := newCnEnv(t, dbtest.SQLite(t, migrations.FS))
	w := e.get("/atlassian-connect.json", "", "")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %s", w.Code, w.Header())
	}
	var served map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &served); err != nil {
		t.Fatal(err)
	}
	if served["key"] != cnAppKey || served["baseUrl"] != cnBaseURL {
		t.Fatalf("key %v baseUrl %v, want %s %s", served["key"], served["baseUrl"], cnAppKey, cnBaseURL)
	}
	// The repository's atlassian-connect.json is the same descriptor with a
	// placeholder key and base URL.
	b, err := os.ReadFile(filepath.Join(interop.Root(t), "atlassian-connect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if file["key"] != "space-sync" || file["baseUrl"] != "https://spacesync.example.com" {
		t.Errorf("the file's key %v and baseUrl %v", file["key"], file["baseUrl"])
	}
	file["key"], file["baseUrl"] = served["key"], served["baseUrl"]
	fj, _ := json.Marshal(file)
	sj, _ := json.Marshal(served)
	if !bytes.Equal(fj, sj) {
		t.Errorf("atlassian-connect.json and the served descriptor differ:\nfile   %s\nserved %s", fj, sj)
	}
	// What Atlassian relies on.
	var d connect.Descriptor
	json.Unmarshal(w.Body.Bytes(), &d)
	if d.Authentication.Type != "jwt" || !d.APIMigrations.SignedInstall || !d.APIMigrations.ContextQSH ||
		len(d.Scopes) != 1 || d.Scopes[0] != "READ" || len(d.Modules.GeneralPages) != 1 ||
		d.Modules.GeneralPages[0].URL != "/pages/space-sync" || d.Modules.GeneralPages[0].Name.Value != "Space Sync" {
		t.Errorf("descriptor: %+v", d)
	}
	// Every lifecycle URL is routed (an unsigned call is refused, not 404).
	for _, p := range []string{d.Lifecycle.Installed, d.Lifecycle.Uninstalled, d.Lifecycle.Enabled, d.Lifecycle.Disabled} {
		r := httptest.NewRequest(http.MethodPost, p, strings.NewReader("{}"))
		rw := httptest.NewRecorder()
		e.app.Server.ServeHTTP(rw, r)
		if rw.Code != 401 {
			t.Errorf("POST %s: %d, want 401", p, rw.Code)
		}
	}
}
