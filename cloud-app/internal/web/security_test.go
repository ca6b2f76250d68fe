package web

// Security checks of issue 8 over cloud-app's whole route table: the
// response headers of every route (and of unrouted paths), HSTS only over
// TLS, client IPs from trusted proxies only for the failure and email
// limits, and a sweep of every route with another tenant's admin, a space
// admin of another space, a plain user and a user without access, using
// tenant A's real ids. Routes come from the Echo instance, so a route added
// later is covered — and the sweep fails until it is classified.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

// secRoutes returns the app's routes, sorted, Echo's group "not found"
// routes included.
func secRoutes(a *App) []*echo.Route {
	rs := slices.Clone(a.Server.Routes())
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Path != rs[j].Path {
			return rs[i].Path < rs[j].Path
		}
		return rs[i].Method < rs[j].Method
	})
	return rs
}

func secKey(r *echo.Route) string { return r.Method + " " + r.Path }

var secParam = regexp.MustCompile(`:[A-Za-z]+|\*`)

// secTarget fills a route path's parameters from params; * and unknown
// parameters get a value that matches nothing.
func secTarget(path string, params map[string]string) string {
	return secParam.ReplaceAllStringFunc(path, func(p string) string {
		if v, ok := params[p]; ok {
			return v
		}
		return "no-such-thing"
	})
}

func secMethod(r *echo.Route) string {
	if r.Method == echo.RouteNotFound {
		return http.MethodGet
	}
	return r.Method
}

// secReq describes one request sent straight through the route table.
type secReq struct {
	method, target string
	auth           string // the whole Authorization header
	body           any    // JSON unless a string
	remote         string // the TCP peer; default a fresh address
	header         map[string]string
}

var secPeer atomic.Int64

// secDo serves r through the app's real route table.
func secDo(a *App, r secReq) uiResp {
	var raw []byte
	switch b := r.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req := httptest.NewRequest(r.method, r.target, bytes.NewReader(raw))
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	req.RemoteAddr = r.remote
	if req.RemoteAddr == "" {
		// A fresh peer each time: the sweep's refusals must not add up to
		// the failure rate limit of one address.
		n := secPeer.Add(1)
		req.RemoteAddr = fmt.Sprintf("192.0.2.%d:%d", n%250+1, 10000+n%50000)
	}
	w := httptest.NewRecorder()
	a.Server.ServeHTTP(w, req)
	return uiResp{Code: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// checkCloudHeaders checks the headers every cloud-app answer must carry:
// nosniff, a Referrer-Policy, a CSP whose frame-ancestors lists only
// Confluence Cloud (*.atlassian.net), the configured product hosts and, on
// a page, that page's tenant, and no X-Frame-Options (which would blank the
// page inside Confluence); HSTS exactly when the answer went out over TLS.
func checkCloudHeaders(t testing.TB, a *App, what string, hd http.Header, overTLS bool, tenantOrigins ...string) {
	t.Helper()
	if got := hd.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if hd.Get("Referrer-Policy") == "" {
		t.Errorf("%s: no Referrer-Policy", what)
	}
	if v := hd.Values("X-Frame-Options"); len(v) > 0 {
		t.Errorf("%s: X-Frame-Options %q", what, v)
	}
	csp := hd.Get("Content-Security-Policy")
	if len(cspDirective(csp, "default-src")) == 0 {
		t.Errorf("%s: CSP %q has no default-src", what, csp)
	}
	allowed := []string{"https://*.atlassian.net"}
	for _, h := range a.deps.Config.ProductHosts {
		allowed = append(allowed, "https://"+h)
	}
	ancestors := cspDirective(csp, "frame-ancestors")
	if !slices.Contains(ancestors, "https://*.atlassian.net") {
		t.Errorf("%s: frame-ancestors %v lacks Confluence Cloud", what, ancestors)
	}
	for _, src := range ancestors {
		if !slices.Contains(allowed, src) && !slices.Contains(tenantOrigins, src) {
			t.Errorf("%s: frame-ancestors allows %s (CSP %q)", what, src, csp)
		}
	}
	for _, d := range []string{"default-src", "script-src"} {
		if v := cspDirective(csp, d); slices.Contains(v, "'unsafe-inline'") || slices.Contains(v, "'unsafe-eval'") || slices.Contains(v, "*") {
			t.Errorf("%s: CSP %s %v", what, d, v)
		}
	}
	hsts := hd.Get("Strict-Transport-Security")
	if overTLS {
		age := -1
		if m := regexp.MustCompile(`^max-age=([0-9]+)`).FindStringSubmatch(hsts); m != nil {
			age, _ = strconv.Atoi(m[1])
		}
		if age < 31536000 {
			t.Errorf("%s: HSTS %q over TLS, want max-age of a year or more", what, hsts)
		}
	} else if hsts != "" {
		t.Errorf("%s: HSTS %q over plain http", what, hsts)
	}
}

// TestSecurityHeaders_EveryRoute sends every route of the route table (and
// unrouted paths, and a method a route does not take), anonymously and with
// the credential the route takes, over plain http and over TLS, and checks
// the headers of each answer.
func TestSecurityHeaders_EveryRoute(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	site := e.sites[0]
	ada := site.user(t, uiAda)
	adaTok := site.token(t, ada)
	s := e.createSync(t, adaTok, "ENG", "Headers", nil)
	r := e.as(adaTok, "POST", "/api/ui/syncs/"+s.ID+"/token-emails", map[string]string{"to": "headers@example.org"})
	var sent struct{ Email uiEmail }
	r.decode(t, &sent)
	page := e.call("GET", strings.TrimPrefix(mustPageURL(t, site, ada), e.appURL), "", nil)
	asset := regexp.MustCompile(`/static/space-sync\.[0-9a-f]+\.js`).Find(page.Body)
	if page.Code != 200 || asset == nil {
		t.Fatalf("page: %s", page)
	}
	params := map[string]string{":spaceKey": "ENG", ":file": strings.TrimPrefix(string(asset), "/static/")}

	routes := secRoutes(e.app)
	type call struct{ method, target, auth string }
	calls := []call{
		{"GET", "/no-such-page", ""}, {"GET", "/api/ui/no-such-thing", "JWT " + adaTok}, {"PUT", "/atlassian-connect.json", ""},
		{"PATCH", "/api/ui/spaces", "JWT " + adaTok},
	}
	for _, rt := range routes {
		p := params
		if strings.Contains(rt.Path, "/syncs/:id") {
			p = mergeParams(params, map[string]string{":id": s.ID})
		} else if strings.Contains(rt.Path, "/token-emails/:id") {
			p = mergeParams(params, map[string]string{":id": sent.Email.ID})
		}
		target := secTarget(rt.Path, p)
		calls = append(calls, call{secMethod(rt), target, ""})
		switch {
		case rt.Path == "/pages/space-sync":
			// The page with its page token: the tenant's own CSP.
			calls = append(calls, call{"GET", strings.TrimPrefix(mustPageURL(t, site, ada), e.appURL), ""})
		case strings.HasPrefix(rt.Path, "/api/ui"):
			calls = append(calls, call{secMethod(rt), target, "JWT " + adaTok})
		}
	}
	answers := 0
	for _, cl := range calls {
		for _, overTLS := range []bool{false, true} {
			target := cl.target
			if overTLS {
				target = "https://" + strings.TrimPrefix(e.appURL, "http://") + target // httptest marks it TLS
			}
			var body any
			if cl.method == "POST" {
				body = map[string]any{"name": "Headers 2", "permissions": []any{}, "message": "m", "to": "headers@example.org"}
			}
			res := secDo(e.app, secReq{method: cl.method, target: target, auth: cl.auth, body: body})
			what := fmt.Sprintf("%s %s (auth %v, TLS %v): %d", cl.method, cl.target, cl.auth != "", overTLS, res.Code)
			if res.Code >= 500 {
				t.Errorf("%s: %s", what, res)
			}
			var tenants []string
			if strings.HasPrefix(cl.target, "/pages/") {
				tenants = []string{site.URL}
			}
			checkCloudHeaders(t, e.app, what, res.Header, overTLS, tenants...)
			answers++
		}
	}
	t.Logf("%d routes, %d answers checked", len(routes), answers)
}

func mergeParams(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func mustPageURL(t testing.TB, site *uiSite, account string) string {
	t.Helper()
	u, err := site.sim.PageURL("space-sync", account)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSecurityHeaders_HSTS: on every route HSTS is decided per request — a
// TLS connection, or a trusted proxy's X-Forwarded-Proto: https — and never
// by the (https) base URL alone or a forwarding header from an untrusted
// peer.
func TestSecurityHeaders_HSTS(t *testing.T) {
	e := newV1Env(t, dbtest.SQLite(t, migrations.FS), map[string]string{
		"CLOUD_APP_BASE_URL": "https://spacesync.example.com", "CLOUD_APP_TRUSTED_PROXIES": "198.51.100.0/24",
	})
	tests := []struct {
		name  string
		tls   bool
		peer  string
		proto []string
		want  bool
	}{
		{"OK_TLS", true, "203.0.113.9:4000", nil, true},
		{"OK_TrustedProxyHTTPS", false, "198.51.100.7:4000", []string{"https"}, true},
		{"OK_TrustedProxyAppended", false, "198.51.100.7:4000", []string{"http, https"}, true},
		{"ErrPlainHTTPS_BaseURL", false, "203.0.113.9:4000", nil, false},
		{"ErrForgedProtoUntrustedPeer", false, "203.0.113.9:4000", []string{"https"}, false},
		{"ErrTrustedProxySaysHTTP", false, "198.51.100.7:4000", []string{"http"}, false},
		{"ErrTrustedProxyClientClaimFirst", false, "198.51.100.7:4000", []string{"https, http"}, false},
		{"ErrLoopbackNotImplicitlyTrusted", false, "127.0.0.1:4000", []string{"https"}, false},
	}
	routes := secRoutes(e.app)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rt := range append(routes, &echo.Route{Method: "GET", Path: "/no-such-page"}) {
				target := secTarget(rt.Path, nil)
				if tt.tls {
					target = "https://spacesync.example.com" + target
				}
				req := httptest.NewRequest(secMethod(rt), target, nil)
				req.RemoteAddr = tt.peer
				for _, p := range tt.proto {
					req.Header.Add("X-Forwarded-Proto", p)
				}
				w := httptest.NewRecorder()
				e.app.Server.ServeHTTP(w, req)
				if w.Code >= 500 {
					t.Errorf("%s: %d", secKey(rt), w.Code)
				}
				checkCloudHeaders(t, e.app, secKey(rt), w.Header(), tt.want)
			}
		})
	}
}

// TestClientIP_RedemptionLimit: the limit on failed previews and
// redemptions counts the client IP the configured trusted proxies vouch
// for, and nothing a client claims (TestAPIV1_RateLimit covers the case
// with no trusted proxies).
func TestClientIP_RedemptionLimit(t *testing.T) {
	d := dbtest.SQLite(t, migrations.FS)
	rotating := func(i int) string { return fmt.Sprintf("203.0.113.%d", i%250+1) }
	// fail makes apiV1FailureLimit failed redemptions from peer, with
	// X-Forwarded-For xff(i), then returns one more.
	fail := func(t *testing.T, e *v1Env, peer string, xff func(int) string) v1Response {
		t.Helper()
		tenant := e.tenant("xff-" + strconv.Itoa(int(e.ipSeq.Add(1))))
		bad := v1Redemption("garbage", tenant, e.sync(tenant, "ENG"), "inst", e.newLinkSecret())
		try := func(i int) v1Response {
			return e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: bad, RemoteAddr: peer,
				Header: map[string]string{"X-Forwarded-For": xff(i)}})
		}
		for i := range apiV1FailureLimit {
			if r := try(i); r.Code != 400 {
				t.Fatalf("failure %d: %s, want 400", i+1, r)
			}
		}
		return try(apiV1FailureLimit)
	}
	t.Run("ErrForgedXFF_UntrustedPeer", func(t *testing.T) {
		e := newV1Env(t, d, map[string]string{"CLOUD_APP_TRUSTED_PROXIES": "198.51.100.0/24"})
		if r := fail(t, e, "192.0.2.10:5000", rotating); r.Code != 429 || r.ErrCode() != apperr.RateLimited {
			t.Errorf("untrusted peer with rotating X-Forwarded-For: %s, want 429", r)
		}
	})
	t.Run("ErrForgedXFFBehindTrustedProxy", func(t *testing.T) {
		e := newV1Env(t, d, map[string]string{"CLOUD_APP_TRUSTED_PROXIES": "198.51.100.0/24"})
		forged := func(i int) string { return rotating(i) + ", 192.0.2.99" }
		if r := fail(t, e, "198.51.100.7:5000", forged); r.Code != 429 {
			t.Errorf("forged entries before the proxy's: %s, want 429", r)
		}
		// Previews from the real client are limited too.
		r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: "garbage"},
			RemoteAddr: "198.51.100.7:5000", Header: map[string]string{"X-Forwarded-For": "10.9.9.9, 192.0.2.99"}})
		if r.Code != 429 {
			t.Errorf("a preview from the limited client: %s, want 429", r)
		}
	})
	t.Run("OK_TrustedProxy", func(t *testing.T) {
		e := newV1Env(t, d, map[string]string{"CLOUD_APP_TRUSTED_PROXIES": "198.51.100.0/24"})
		if r := fail(t, e, "198.51.100.7:5000", rotating); r.Code != 400 {
			t.Errorf("%d clients behind a trusted proxy: %s, want 400", apiV1FailureLimit+1, r)
		}
	})
}

// TestClientIP_EmailLimit: the per-user and per-tenant email limits key on
// the verified Connect identity, so no X-Forwarded-For (or peer address)
// gets a sender around them.
func TestClientIP_EmailLimit(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{MailMode: "outbox"})
	site := e.sites[0]
	adaTok := site.token(t, site.user(t, uiAda))
	samTok := site.token(t, site.user(t, uiSam))
	s := e.createSync(t, adaTok, "ENG", "Mail", nil)
	e.app.mailLimits = mail.Limits{PerUser: 3, PerTenant: 5, Window: time.Hour}
	send := func(tok string, i int) uiResp {
		return secDo(e.app, secReq{method: "POST", target: "/api/ui/syncs/" + s.ID + "/token-emails", auth: "JWT " + tok,
			body:   map[string]string{"to": "limit@example.org"},
			remote: fmt.Sprintf("192.0.2.%d:4000", i+1), header: map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)}})
	}
	for i := range 3 {
		if r := send(adaTok, i); r.Code != 202 {
			t.Fatalf("send %d: %s", i+1, r)
		}
	}
	if r := send(adaTok, 3); r.Code != 429 || r.ErrCode() != apperr.RateLimited {
		t.Errorf("the user's 4th email from another address: %s, want 429", r)
	}
	for i := range 2 {
		if r := send(samTok, 10+i); r.Code != 202 {
			t.Fatalf("sam's send %d: %s", i+1, r)
		}
	}
	if r := send(samTok, 20); r.Code != 429 || !strings.Contains(string(r.Body), "site") {
		t.Errorf("the tenant's 6th email from another address: %s, want 429", r)
	}
}

// secSnapshot is every row of one tenant's data, and every tenant's state.
func secSnapshot(t testing.TB, d *db.DB, tenantID string) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT * FROM tenants ORDER BY id",
		"SELECT * FROM syncs WHERE tenant_id = ? ORDER BY id",
		"SELECT * FROM tokens WHERE tenant_id = ? ORDER BY jti",
		"SELECT * FROM links WHERE tenant_id = ? ORDER BY id",
		"SELECT * FROM token_emails WHERE tenant_id = ? ORDER BY id",
		"SELECT * FROM audit_events WHERE tenant_id = ? ORDER BY id",
	} {
		var args []any
		if strings.Contains(q, "?") {
			args = append(args, tenantID)
		}
		var rows []map[string]any
		if err := d.Raw(q, args...).Scan(&rows).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		j, _ := json.Marshal(rows)
		b.WriteString(q + "\n" + string(j) + "\n")
	}
	return b.String()
}

// secClass says how a route answers callers who must get nothing of tenant
// A: each route of the table is in exactly one class.
type secClass int

const (
	// secPublic routes carry no tenant data (descriptor, health, assets).
	secPublic secClass = iota
	// secLifecycle routes take only Atlassian's signed callbacks.
	secLifecycle
	// secPage is the page: only a page token (?jwt=) opens it.
	secPage
	// secV1Token routes take a token in the body as their credential.
	secV1Token
	// secV1Link routes take a link secret (Bearer).
	secV1Link
	// secUnrouted are Echo's not-found routes of a group.
	secUnrouted
	// secUITenant routes are resolved in the caller's own tenant (the
	// space list, the picker, a space key): the caller's data, never A's.
	secUITenant
	// secUISync routes name one of A's syncs or emails by id.
	secUISync
)

// secRouteClasses classifies every route of cloud-app. A route that is not
// here fails TestAccess_Sweep.
var secRouteClasses = map[string]secClass{
	"GET /atlassian-connect.json":                      secPublic,
	"GET /healthz":                                     secPublic,
	"GET /readyz":                                      secPublic,
	"GET /metrics":                                     secPublic,
	"GET /static/:file":                                secPublic,
	"HEAD /static/:file":                               secPublic,
	"POST /lifecycle/installed":                        secLifecycle,
	"POST /lifecycle/uninstalled":                      secLifecycle,
	"POST /lifecycle/enabled":                          secLifecycle,
	"POST /lifecycle/disabled":                         secLifecycle,
	"GET /pages/space-sync":                            secPage,
	"POST /api/v1/token-previews":                      secV1Token,
	"POST /api/v1/redemptions":                         secV1Token,
	"GET /api/v1/links/self":                           secV1Link,
	"DELETE /api/v1/links/self":                        secV1Link,
	echo.RouteNotFound + " /api/v1":                    secUnrouted,
	echo.RouteNotFound + " /api/v1/*":                  secUnrouted,
	echo.RouteNotFound + " /api/ui":                    secUnrouted,
	echo.RouteNotFound + " /api/ui/*":                  secUnrouted,
	"GET /api/ui/spaces":                               secUITenant,
	"GET /api/ui/principals":                           secUITenant,
	"GET /api/ui/spaces/:spaceKey/syncs":               secUITenant,
	"POST /api/ui/spaces/:spaceKey/syncs":              secUITenant,
	"GET /api/ui/spaces/:spaceKey/default-permissions": secUITenant,
	"GET /api/ui/syncs/:id":                            secUISync,
	"DELETE /api/ui/syncs/:id":                         secUISync,
	"POST /api/ui/syncs/:id/token-downloads":           secUISync,
	"POST /api/ui/syncs/:id/token-emails":              secUISync,
	"POST /api/ui/syncs/:id/revocations":               secUISync,
	"GET /api/ui/token-emails/:id":                     secUISync,
}

// TestAccess_Sweep: tenant A has, in space MKT, a linked sync (its token
// used, a link to a DC instance) and an open one (a downloaded and an
// emailed token, the email sent). Every route of the table is called with
// A's real ids in its parameters, and bodies naming them, by tenant B's
// admin, by a space admin of other spaces of A, by a plain user of A and by
// a user of A who sees nothing. Nobody gets a 2xx carrying what they may
// not see (for B and the user without access: anything of A; for A's
// viewers: tokens, recipients, the link and the audit trail), nothing of A
// changes (every row of A, and every tenant, compared before and after each
// call), refusals are 401/403/404 with their stable code (400/422 for the
// routes whose credential is a token in the body), and nothing is a 500.
// A twin shows A's own admin gets the data the others do not.
func TestAccess_Sweep(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newUIEnv(t, d, uiOptions{Sites: 2})
		siteA, siteB := e.sites[0], e.sites[1]
		adaA := siteA.token(t, siteA.user(t, uiAda))
		tenantA := e.tenantID(t, siteA)

		// Tenant A's data, with names no other tenant has.
		linked := e.createSync(t, adaA, "MKT", "A-linked-sync-Quokka", nil)
		open := e.createSync(t, adaA, "MKT", "A-open-sync-Wombat", nil)
		r := e.as(adaA, "POST", "/api/ui/syncs/"+linked.ID+"/token-downloads", map[string]string{"message": "A-message-Platypus"})
		if r.Code != 200 {
			t.Fatalf("download: %s", r)
		}
		linkedTok := strings.TrimSpace(string(r.Body))
		instanceID, instanceName, linkSecret := "A-instance-Echidna", "A-DC-Numbat", token.NewRedemptionSecret()
		red := protocol.RedemptionRequest{
			Token: linkedTok, Instance: protocol.Instance{ID: instanceID, Name: instanceName, BaseURL: "https://a-dc.example.org"},
			Name: "A-linked-name-Bilby", LinkSecret: linkSecret,
			Expect: protocol.Expect{SiteBaseURL: siteA.sim.BaseURL(), SpaceID: linked.SpaceID, SyncID: linked.ID},
		}
		r = e.call("POST", protocol.PathRedemptions, "", red)
		if r.Code != 201 {
			t.Fatalf("redeem: %s", r)
		}
		var redeemed protocol.RedemptionResponse
		r.decode(t, &redeemed)
		r = e.as(adaA, "POST", "/api/ui/syncs/"+open.ID+"/token-downloads", map[string]string{"message": "A-message-Kiwi"})
		if r.Code != 200 {
			t.Fatalf("download: %s", r)
		}
		openTok := strings.TrimSpace(string(r.Body))
		const recipient = "a-recipient-kookaburra@example.org"
		r = e.as(adaA, "POST", "/api/ui/syncs/"+open.ID+"/token-emails", map[string]string{"to": recipient, "message": "A-message-Emu"})
		if r.Code != 202 {
			t.Fatalf("send: %s", r)
		}
		var sent struct{ Email uiEmail }
		r.decode(t, &sent)
		if st := e.waitEmail(t, adaA, sent.Email.ID); st.Status != store.EmailSent {
			t.Fatalf("email: %+v", st)
		}
		jtis := []string{}
		for _, tok := range []string{linkedTok, openTok} {
			jtis = append(jtis, tokenHeader(t, tok)["jti"].(string))
		}
		var emailJTI string
		if err := d.Raw("SELECT token_jti FROM token_emails WHERE id = ?", sent.Email.ID).Scan(&emailJTI).Error; err != nil || emailJTI == "" {
			t.Fatalf("email's jti: %v", err)
		}
		jtis = append(jtis, emailJTI)

		// What each kind of caller must never see of A.
		secrets := append([]string{recipient, redeemed.Link.ID, instanceID, instanceName, "A-linked-name-Bilby", sent.Email.ID,
			"A-message-Platypus", "A-message-Kiwi", "A-message-Emu", linkSecret, linkedTok, openTok}, jtis...)
		everything := append([]string{linked.ID, open.ID, "A-linked-sync-Quokka", "A-open-sync-Wombat", tenantA, siteA.sim.ClientKey()}, secrets...)

		type caller struct {
			name string
			auth string
			// foreign callers are of another tenant, or see nothing of A:
			// they may see no trace of A; A's viewers may see the syncs'
			// settings, never secrets.
			foreign bool
			// viewer: may view MKT (and so read the syncs' settings).
			viewer bool
		}
		callers := []caller{
			{"tenant B's admin", "JWT " + siteB.token(t, siteB.user(t, uiAda)), true, false},
			{"admin of other spaces of A", "JWT " + siteA.token(t, siteA.user(t, uiSam)), false, true},
			{"plain user of A", "JWT " + siteA.token(t, siteA.user(t, uiPat)), false, true},
			{"user of A who sees nothing", "JWT " + siteA.token(t, siteA.user(t, uiNia)), true, false},
		}

		// Every route must be classified, and every class entry routed.
		routes := secRoutes(e.app)
		routed := map[string]bool{}
		for _, rt := range routes {
			routed[secKey(rt)] = true
			if _, ok := secRouteClasses[secKey(rt)]; !ok {
				t.Errorf("route %s is not classified in secRouteClasses: decide who may call it and add it", secKey(rt))
			}
		}
		for k := range secRouteClasses {
			if !routed[k] {
				t.Errorf("secRouteClasses names %s, which is not routed", k)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		asset := ""
		for _, name := range e.app.ui.assets.Names() {
			if u, err := e.app.ui.assets.URL(name); err == nil {
				asset = strings.TrimPrefix(u, "/static/")
				break
			}
		}
		// The targets of each route: A's ids in every parameter.
		targets := func(rt *echo.Route) []string {
			switch {
			case strings.Contains(rt.Path, "/token-emails/:id"):
				return []string{secTarget(rt.Path, map[string]string{":id": sent.Email.ID})}
			case strings.Contains(rt.Path, ":id"):
				return []string{secTarget(rt.Path, map[string]string{":id": linked.ID}), secTarget(rt.Path, map[string]string{":id": open.ID})}
			}
			return []string{secTarget(rt.Path, map[string]string{":spaceKey": "MKT", ":file": asset})}
		}
		bodyFor := func(rt *echo.Route) any {
			switch {
			case strings.HasSuffix(rt.Path, "/token-previews"):
				return protocol.PreviewRequest{Token: open.ID}
			case strings.HasSuffix(rt.Path, "/redemptions"):
				rr := red
				rr.Token, rr.LinkSecret = linked.ID, token.NewRedemptionSecret()
				return rr
			case strings.HasPrefix(rt.Path, "/lifecycle/"):
				return map[string]any{"key": "space-sync-dev", "clientKey": siteA.sim.ClientKey(), "sharedSecret": "hijacked-secret-0123456789", "baseUrl": siteA.sim.BaseURL()}
			case strings.HasSuffix(rt.Path, "/spaces/:spaceKey/syncs"):
				return map[string]any{"name": "Sweep sync", "permissions": []any{}}
			case strings.HasSuffix(rt.Path, "/token-emails"):
				return map[string]string{"to": "sweep-mallory@example.org"}
			case strings.HasSuffix(rt.Path, "/token-downloads"):
				return map[string]string{"message": "sweep"}
			}
			return nil
		}

		calls, per := 0, map[string]int{}
		for _, rt := range routes {
			class := secRouteClasses[secKey(rt)]
			for _, target := range targets(rt) {
				for _, c := range callers {
					what := fmt.Sprintf("%s as %s: %s %s", secKey(rt), c.name, secMethod(rt), target)
					before := secSnapshot(t, d, tenantA)
					res := secDo(e.app, secReq{method: secMethod(rt), target: target, auth: c.auth, body: bodyFor(rt)})
					calls++
					per[secKey(rt)]++
					if after := secSnapshot(t, d, tenantA); after != before {
						t.Errorf("%s: %d changed tenant A's data or a tenant's state:\nbefore %s\nafter  %s", what, res.Code, before, after)
					}
					checkCloudHeaders(t, e.app, what, res.Header, false)
					if res.Code >= 500 {
						t.Errorf("%s: %s", what, res)
						continue
					}
					forbidden := secrets
					if c.foreign {
						forbidden = everything
					}
					for _, s := range forbidden {
						if bytes.Contains(res.Body, []byte(s)) {
							t.Errorf("%s: %d carries %q of tenant A: %s", what, res.Code, s, res)
						}
					}
					ok := res.Code >= 200 && res.Code < 300
					if ok {
						// A 2xx is allowed only where it reveals nothing
						// of A: public routes, the caller's own tenant, and
						// A's viewers reading the settings of MKT's syncs.
						allowed := class == secPublic || class == secUITenant ||
							(class == secUISync && c.viewer && secMethod(rt) == "GET" && !strings.Contains(rt.Path, "token-emails"))
						if !allowed {
							t.Errorf("%s: %s, want a refusal", what, res)
						}
						if class == secUISync {
							var raw map[string]any
							_ = json.Unmarshal(res.Body, &raw)
							for _, k := range []string{"tokens", "audit", "link", "links", "createdBy"} {
								if _, has := raw[k]; has {
									t.Errorf("%s: a viewer gets %s", what, k)
								}
							}
						}
						if secKey(rt) == "GET /api/ui/spaces" && c.foreign {
							// B's MKT has no syncs; A's must not be counted.
							var page uiSpacesResp
							_ = json.Unmarshal(res.Body, &page)
							for _, sp := range page.Results {
								if sp.Syncs != nil && sp.Syncs.Total != 0 {
									t.Errorf("%s: %s counts %d syncs", what, sp.Key, sp.Syncs.Total)
								}
							}
						}
						continue
					}
					want := map[int]apperr.Code{401: apperr.Unauthorized, 403: apperr.Forbidden, 404: apperr.NotFound}
					if class == secV1Token {
						want = map[int]apperr.Code{400: apperr.InvalidToken, 422: apperr.ValidationFailed}
					}
					if secMethod(rt) == "HEAD" {
						if _, known := want[res.Code]; !known {
							t.Errorf("%s: HEAD %d", what, res.Code)
						}
						continue
					}
					got := res.ErrCode()
					if class == secPage {
						// The page's errors are a page in the frame, with
						// the code in words.
						if m := regexp.MustCompile(`Code ([a-z_]+) ·`).FindSubmatch(res.Body); m != nil {
							got = apperr.Code(m[1])
						}
					}
					if code, known := want[res.Code]; !known || got != code {
						t.Errorf("%s: %s, want one of %v with its code", what, res, want)
					}
					if class == secUISync && c.name == "tenant B's admin" && res.Code != 404 {
						t.Errorf("%s: %s, want 404 not_found (another tenant's id)", what, res)
					}
				}
			}
		}
		// Tenant B's page, opened with B's own page token, shows nothing of A.
		pb := e.call("GET", strings.TrimPrefix(mustPageURL(t, siteB, siteB.user(t, uiAda)), e.appURL), "", nil)
		for _, s := range everything {
			if pb.Code != 200 || bytes.Contains(pb.Body, []byte(s)) {
				t.Errorf("tenant B's page: %d, carries %q", pb.Code, s)
			}
		}
		t.Logf("%d routes swept, %d calls (%d callers)", len(routes), calls, len(callers))

		// The twin: A's admin of MKT sees what the others did not.
		dd := e.details(t, adaA, open.ID)
		if len(dd.Tokens) != 2 || !slices.ContainsFunc(dd.Tokens, func(tk uiToken) bool { return tk.Recipient == recipient }) {
			t.Errorf("A's admin: tokens %+v", dd.Tokens)
		}
		if ld := e.details(t, adaA, linked.ID); ld.Link == nil || ld.Link.InstanceName != instanceName {
			t.Errorf("A's admin: link %+v", ld.Link)
		}
		if r := e.as(adaA, "GET", "/api/ui/token-emails/"+sent.Email.ID, nil); r.Code != 200 || !strings.Contains(string(r.Body), recipient) {
			t.Errorf("A's admin follows the email: %s", r)
		}
		if r := e.call("GET", protocol.PathLinkSelf, "Bearer "+linkSecret, nil); r.Code != 200 {
			t.Errorf("the link's own secret: %s", r)
		}
	})
}
