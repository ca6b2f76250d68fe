package web

// Security checks of issue 8 over dc-app's whole route table: the response
// headers and cookie attributes of every route (and of unrouted paths),
// HSTS only over TLS, CSRF on every state-changing route, and client IPs
// from trusted proxies only for the sign-in throttle. Routes come from the
// Echo instance, so a route added later is covered (or, for CSRF, must be
// classified) without editing these tests.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/labstack/echo/v4"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/apperr"
)

// secRoutes returns the app's routes, sorted, Echo's group "not found"
// routes included.
func secRoutes(h *harness) []*echo.Route {
	rs := slices.Clone(h.app.Server.Routes())
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Path != rs[j].Path {
			return rs[i].Path < rs[j].Path
		}
		return rs[i].Method < rs[j].Method
	})
	return rs
}

var secParam = regexp.MustCompile(`:[A-Za-z]+|\*`)

// secTarget fills a route path's parameters: :id with a synced space's id,
// :file with an asset's hashed name, * with a path that matches nothing.
func secTarget(path string, params map[string]string) string {
	return secParam.ReplaceAllStringFunc(path, func(p string) string {
		if v, ok := params[p]; ok {
			return v
		}
		return "no-such-thing"
	})
}

// secMethod is the method to send for a route (Echo's "not found" routes
// answer any method).
func secMethod(r *echo.Route) string {
	if r.Method == echo.RouteNotFound {
		return http.MethodGet
	}
	return r.Method
}

// cspDirectives parses a Content-Security-Policy.
func cspDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			out[strings.ToLower(f[0])] = f[1:]
		}
	}
	return out
}

// checkDCHeaders checks the headers every dc-app answer must carry: a CSP
// that forbids framing and plugins, X-Frame-Options DENY, nosniff, a
// Referrer-Policy, HSTS exactly when the answer went out over TLS, and on
// every cookie HttpOnly, SameSite, a Path, and Secure exactly when the base
// URL is https.
func checkDCHeaders(t testing.TB, what string, hd http.Header, overTLS, secureBase bool) {
	t.Helper()
	csp := cspDirectives(hd.Get("Content-Security-Policy"))
	if !slices.Equal(csp["frame-ancestors"], []string{"'none'"}) || len(csp["default-src"]) == 0 ||
		!slices.Equal(csp["object-src"], []string{"'none'"}) || !slices.Equal(csp["base-uri"], []string{"'none'"}) {
		t.Errorf("%s: CSP %q", what, hd.Get("Content-Security-Policy"))
	}
	for _, d := range []string{"default-src", "script-src"} {
		if slices.Contains(csp[d], "'unsafe-inline'") || slices.Contains(csp[d], "'unsafe-eval'") || slices.Contains(csp[d], "*") {
			t.Errorf("%s: CSP %s %v", what, d, csp[d])
		}
	}
	if got := hd.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("%s: X-Frame-Options %q, want DENY", what, got)
	}
	if got := hd.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if hd.Get("Referrer-Policy") == "" {
		t.Errorf("%s: no Referrer-Policy", what)
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
	for _, raw := range hd.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(raw)
		if err != nil {
			t.Errorf("%s: Set-Cookie %q: %v", what, raw, err)
			continue
		}
		if !ck.HttpOnly || (ck.SameSite != http.SameSiteLaxMode && ck.SameSite != http.SameSiteStrictMode) || ck.Path == "" || ck.Secure != secureBase {
			t.Errorf("%s: cookie %q (want HttpOnly, SameSite Lax or Strict, a Path, Secure=%v)", what, raw, secureBase)
		}
		if strings.HasPrefix(ck.Name, "__Host-") && (ck.Path != "/" || ck.Domain != "" || !ck.Secure) {
			t.Errorf("%s: __Host- cookie %q", what, raw)
		}
	}
}

// secEndpoint is a harness reached at a given URL: the plain test server,
// or a TLS server in front of the same app.
type secEndpoint struct {
	h          *harness
	url        string
	transport  http.RoundTripper
	overTLS    bool
	secureBase bool
}

// client is a browser-like client of the endpoint.
func (ep secEndpoint) client() *client {
	hh := *ep.h
	hh.URL = ep.url
	c := hh.newClient()
	if ep.transport != nil {
		c.hc.Transport = ep.transport
	}
	return c
}

// signedIn is a client signed in as the admin, with its CSRF token.
func (ep secEndpoint) signedIn(t testing.TB) *client {
	t.Helper()
	c := ep.client()
	if resp := c.login(adminUser, adminPass); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", resp.StatusCode, readBody(resp))
	}
	c.loadCSRF()
	return c
}

// send sends method target as a browser page would (Accept text/html) or
// the page's script (JSON, same-origin, with the CSRF token unless csrf is
// false), and returns the answer with its body read.
func (ep secEndpoint) send(c *client, method, target string, page, csrf bool) *http.Response {
	var body io.Reader
	ct := ""
	switch {
	case method == http.MethodPost && strings.HasPrefix(target, "/api/"):
		ct, body = "application/json", strings.NewReader(`{}`)
	case method == http.MethodPost:
		ct, body = "application/x-www-form-urlencoded", strings.NewReader("")
	}
	req, _ := http.NewRequest(method, ep.url+target, body)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if page {
		req.Header.Set("Accept", "text/html")
	} else {
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if csrf {
			req.Header.Set("X-CSRF-Token", c.csrf)
		}
	}
	resp := c.do(req)
	readBody(resp)
	return resp
}

// TestSecurityHeaders_EveryRoute sends every route of the route table (and
// an unrouted path, and a method a route does not take) as an anonymous
// browser, a signed-in page and the signed-in page's script, with and
// without the CSRF token, over plain http with an http base URL and over
// TLS with an https one, and checks the headers and cookies of each answer.
func TestSecurityHeaders_EveryRoute(t *testing.T) {
	plain := newHarness(t, harnessOptions{})
	secure := newHarness(t, harnessOptions{baseURL: "https://dc.example.com"})
	tlsSrv := httptest.NewTLSServer(secure.app.Server)
	t.Cleanup(tlsSrv.Close)
	endpoints := map[string]secEndpoint{
		"http":  {h: plain, url: plain.URL},
		"https": {h: secure, url: tlsSrv.URL, transport: tlsSrv.Client().Transport, overTLS: true, secureBase: true},
	}
	for name, ep := range endpoints {
		t.Run(name, func(t *testing.T) {
			h := ep.h
			// A synced space, so that :id names a real one.
			tok := h.fake.Mint(t, cloudtest.MintOptions{})
			resp := h.importFile("Headers", "a.token", "", []byte(tok))
			var got importAnswer
			decodeJSON(t, resp, &got)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("import: %d", resp.StatusCode)
			}
			sc := ep.signedIn(t)
			doc := sc.page("/space-sync")
			script, _ := doc.Find("script[src]").Attr("src")
			params := map[string]string{":id": got.SyncedSpace.ID, ":file": strings.TrimPrefix(script, "/static/")}

			routes := secRoutes(h)
			if len(routes) < 10 {
				t.Fatalf("only %d routes", len(routes))
			}
			type call struct{ method, target string }
			calls := []call{{http.MethodGet, "/no-such-page"}, {http.MethodGet, "/api/v1/no-such-thing"}, {http.MethodPut, "/login"}, {http.MethodPatch, "/api/v1/synced-spaces"}}
			for _, r := range routes {
				calls = append(calls, call{secMethod(r), secTarget(r.Path, params)})
			}
			answers := 0
			for _, cl := range calls {
				what := cl.method + " " + cl.target
				check := func(who string, resp *http.Response) {
					t.Helper()
					answers++
					if resp.StatusCode >= 500 {
						t.Errorf("%s as %s: HTTP %d", what, who, resp.StatusCode)
					}
					checkDCHeaders(t, what+" as "+who, resp.Header, ep.overTLS, ep.secureBase)
				}
				check("anonymous page", ep.send(ep.client(), cl.method, cl.target, true, false))
				check("anonymous script", ep.send(ep.client(), cl.method, cl.target, false, false))
				if cl.method == http.MethodPost && cl.target == "/logout" {
					// Signing out ends the session: a fresh one each time.
					check("signed-in page", ep.send(ep.signedIn(t), cl.method, cl.target, true, false))
					check("signed-in script", ep.send(ep.signedIn(t), cl.method, cl.target, false, true))
					continue
				}
				check("signed-in page", ep.send(sc, cl.method, cl.target, true, false))
				check("signed-in script", ep.send(sc, cl.method, cl.target, false, true))
				check("signed-in script without CSRF", ep.send(sc, cl.method, cl.target, false, false))
			}
			// The cookies of signing in and out: the sign-in form's, the
			// session's, and the session's removal.
			c := ep.client()
			resp = c.get("/login")
			readBody(resp)
			checkDCHeaders(t, "GET /login", resp.Header, ep.overTLS, ep.secureBase)
			doc = c.page("/login")
			loginTok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
			resp = c.postForm("/login", url.Values{"username": {adminUser}, "password": {adminPass}, "login_csrf": {loginTok}}, nil)
			readBody(resp)
			checkDCHeaders(t, "POST /login", resp.Header, ep.overTLS, ep.secureBase)
			c.loadCSRF()
			out := c.postForm("/logout", url.Values{csrfField: {c.csrf}}, nil)
			readBody(out)
			checkDCHeaders(t, "POST /logout", out.Header, ep.overTLS, ep.secureBase)
			cookies := 0
			for _, r := range []*http.Response{resp, out} {
				for _, raw := range r.Header.Values("Set-Cookie") {
					if ck, err := http.ParseSetCookie(raw); err == nil && strings.HasSuffix(ck.Name, "dcapp_session") {
						cookies++
					}
				}
			}
			if resp.StatusCode != http.StatusSeeOther || out.StatusCode != http.StatusSeeOther || cookies != 2 {
				t.Errorf("sign in %d, sign out %d, %d session cookies set; the cookie checks saw too little", resp.StatusCode, out.StatusCode, cookies)
			}
			t.Logf("%d routes, %d answers checked", len(routes), answers)
		})
	}
}

// TestSecurityHeaders_HSTS: HSTS is decided per request — a TLS connection,
// or a trusted proxy's X-Forwarded-Proto: https — never by the base URL
// alone, and never by a forwarding header from an untrusted peer.
func TestSecurityHeaders_HSTS(t *testing.T) {
	h := newHarness(t, harnessOptions{baseURL: "https://dc.example.com", trustedProxies: "198.51.100.0/24"})
	tests := []struct {
		name   string
		target string // https:// makes httptest mark the request as TLS
		peer   string
		proto  []string
		want   bool
	}{
		{"OK_TLS", "https://dc.example.com/login", "203.0.113.9:4000", nil, true},
		{"OK_TrustedProxyHTTPS", "/login", "198.51.100.7:4000", []string{"https"}, true},
		{"OK_TrustedProxyAppended", "/login", "198.51.100.7:4000", []string{"http, https"}, true},
		{"ErrPlainHTTPS_BaseURL", "/login", "203.0.113.9:4000", nil, false},
		{"ErrForgedProtoUntrustedPeer", "/login", "203.0.113.9:4000", []string{"https"}, false},
		{"ErrTrustedProxySaysHTTP", "/login", "198.51.100.7:4000", []string{"http"}, false},
		{"ErrTrustedProxyClientClaimFirst", "/login", "198.51.100.7:4000", []string{"https, http"}, false},
		{"ErrLoopbackNotImplicitlyTrusted", "/login", "127.0.0.1:4000", []string{"https"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			req.RemoteAddr = tt.peer
			for _, p := range tt.proto {
				req.Header.Add("X-Forwarded-Proto", p)
			}
			rec := httptest.NewRecorder()
			h.app.Server.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /login: %d", rec.Code)
			}
			checkDCHeaders(t, tt.name, rec.Header(), tt.want, true)
		})
	}
}

// secState is what a refused state change must leave alone.
type secState struct {
	rows, redeemed, fakeCalls int
	hash                      string
	sessionOK                 bool
}

func (h *harness) secState(t testing.TB, c *client) secState {
	t.Helper()
	a, err := h.app.Store.AdminByUsername(context.Background(), adminUser)
	if err != nil {
		t.Fatal(err)
	}
	s := secState{rows: h.rows(), redeemed: h.fake.Redeemed(), fakeCalls: h.fake.TotalCalls(), hash: a.PasswordHash}
	resp := c.get("/space-sync")
	readBody(resp)
	s.sessionOK = resp.StatusCode == http.StatusOK
	return s
}

// pageErrorCode reads the stable code of an HTML error page or of the
// sign-in page's error.
func pageErrorCode(t testing.TB, body string) string {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := doc.Find("#login-error").Attr("data-code"); ok {
		return code
	}
	return doc.Find(".section-message--error code").First().Text()
}

// TestCSRF_EveryStateChangingRoute sends every route of the route table
// that is not GET or HEAD with a signed-in session but without its CSRF
// token, and with the token but from another site: each is refused 403
// forbidden and changes nothing (synced spaces, cloud-app calls and
// redemptions, the password, the session). Its twin, the same request with
// the token, is not refused. A new state-changing route fails the test
// until it is classified here.
func TestCSRF_EveryStateChangingRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.fake.Mint(t, cloudtest.MintOptions{})
	resp := h.importFile("CSRF target", "a.token", "", []byte(tok))
	var imported importAnswer
	decodeJSON(t, resp, &imported)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("import: %d", resp.StatusCode)
	}
	id := imported.SyncedSpace.ID
	newPass := "a password changed by CSRF"

	// How each state-changing route is sent: a page form (the _csrf field)
	// or the page's script (the X-CSRF-Token header), with a body that
	// would succeed with the token.
	type route struct {
		form   bool
		body   func() (contentType string, body io.Reader)
		okTwin int // the status with the token
	}
	freshImport := h.fake.Mint(t, cloudtest.MintOptions{SpaceKey: "FRESH1"})
	freshPreview := h.fake.Mint(t, cloudtest.MintOptions{SpaceKey: "FRESH2"})
	routes := map[string]route{
		"POST /logout": {form: true, okTwin: http.StatusSeeOther},
		"POST /account/password": {form: true, okTwin: http.StatusOK, body: func() (string, io.Reader) {
			return "application/x-www-form-urlencoded", strings.NewReader(url.Values{
				"current_password": {adminPass}, "new_password": {newPass}, "confirm_password": {newPass}}.Encode())
		}},
		"POST /api/v1/token-previews": {okTwin: http.StatusOK, body: func() (string, io.Reader) {
			return "text/plain", strings.NewReader(freshPreview)
		}},
		"POST /api/v1/synced-spaces": {okTwin: http.StatusCreated, body: func() (string, io.Reader) {
			ct, b := multipartBody(t, "b.token", "", []byte(freshImport), map[string]string{"name": "Forged import"})
			return ct, b
		}},
		"DELETE /api/v1/synced-spaces/:id": {okTwin: http.StatusNoContent},
	}
	// POST /login is the one state-changing route without a session: its
	// own pre-session token (cookie and form field) guards it.
	const loginRoute = "POST /login"

	seen := map[string]bool{}
	var changing []*echo.Route
	for _, r := range secRoutes(h) {
		if safeMethod(r.Method) || r.Method == echo.RouteNotFound {
			continue
		}
		key := r.Method + " " + r.Path
		seen[key] = true
		if _, ok := routes[key]; !ok && key != loginRoute {
			t.Errorf("%s changes state and is not classified in TestCSRF_EveryStateChangingRoute", key)
			continue
		}
		changing = append(changing, r)
	}
	for key := range routes {
		if !seen[key] {
			t.Errorf("%s is classified but not routed", key)
		}
	}
	if len(changing) != len(routes)+1 {
		t.Fatalf("%d state-changing routes, want %d", len(changing), len(routes)+1)
	}

	send := func(c *client, r *echo.Route, rt route, tokenValue string, hdr map[string]string) *http.Response {
		ct, body := "", io.Reader(nil)
		if rt.body != nil {
			ct, body = rt.body()
		} else if r.Method == http.MethodPost {
			ct, body = "application/x-www-form-urlencoded", strings.NewReader("")
		}
		if rt.form {
			b, _ := io.ReadAll(body)
			v, _ := url.ParseQuery(string(b))
			if tokenValue != "" {
				v.Set(csrfField, tokenValue)
			}
			ct, body = "application/x-www-form-urlencoded", strings.NewReader(v.Encode())
		}
		req, _ := http.NewRequest(r.Method, h.URL+secTarget(r.Path, map[string]string{":id": id}), body)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if rt.form {
			req.Header.Set("Accept", "text/html")
		} else {
			req.Header.Set("Accept", "application/json")
			if tokenValue != "" {
				req.Header.Set(csrfHeader, tokenValue)
			}
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return c.do(req)
	}
	code := func(t *testing.T, rt route, resp *http.Response) string {
		body := readBody(resp)
		if rt.form {
			return pageErrorCode(t, body)
		}
		var e struct{ Error apperr.BodyError }
		_ = json.Unmarshal([]byte(body), &e)
		return string(e.Error.Code)
	}

	for _, r := range changing {
		key := r.Method + " " + r.Path
		if key == loginRoute {
			continue
		}
		rt := routes[key]
		t.Run(key, func(t *testing.T) {
			c := h.signedIn()
			refusals := []struct {
				name  string
				token string
				hdr   map[string]string
			}{
				{"ErrNoToken", "", nil},
				{"ErrWrongToken", c.csrf + "x", nil},
				{"ErrCrossSiteWithToken", c.csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
				{"ErrForeignOriginWithToken", c.csrf, map[string]string{"Origin": "https://evil.example"}},
			}
			for _, rf := range refusals {
				before := h.secState(t, c)
				resp := send(c, r, rt, rf.token, rf.hdr)
				got := code(t, rt, resp)
				if resp.StatusCode != http.StatusForbidden || got != string(apperr.Forbidden) {
					t.Errorf("%s: %d %q, want 403 forbidden", rf.name, resp.StatusCode, got)
				}
				if after := h.secState(t, c); after != before || !after.sessionOK {
					t.Errorf("%s: state changed: %+v -> %+v", rf.name, before, after)
				}
			}
			// The twin: with the token, same-origin, it goes through.
			resp := send(c, r, rt, c.csrf, map[string]string{"Sec-Fetch-Site": "same-origin"})
			readBody(resp)
			if resp.StatusCode != rt.okTwin {
				t.Errorf("with the token: %d, want %d", resp.StatusCode, rt.okTwin)
			}
			if key == "POST /account/password" {
				// Put the password back for the other subtests.
				back := c.postForm("/account/password", url.Values{csrfField: {c.csrf},
					"current_password": {newPass}, "new_password": {adminPass}, "confirm_password": {adminPass}}, nil)
				if readBody(back); back.StatusCode != http.StatusOK {
					t.Fatalf("change the password back: %d", back.StatusCode)
				}
			}
		})
	}

	t.Run(loginRoute, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mod  func(v url.Values, hdr map[string]string)
			want int
		}{
			{"OK", func(url.Values, map[string]string) {}, http.StatusSeeOther},
			{"ErrNoToken", func(v url.Values, _ map[string]string) { v.Del("login_csrf") }, http.StatusForbidden},
			{"ErrWrongToken", func(v url.Values, _ map[string]string) { v.Set("login_csrf", "x") }, http.StatusForbidden},
			{"ErrCrossSite", func(_ url.Values, hdr map[string]string) { hdr["Sec-Fetch-Site"] = "cross-site" }, http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := h.newClient()
				doc := c.page("/login")
				tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
				v := url.Values{"username": {adminUser}, "password": {adminPass}, "login_csrf": {tok}}
				hdr := map[string]string{}
				tc.mod(v, hdr)
				before := h.app.passwordChecks.Load()
				resp := c.postForm("/login", v, hdr)
				body := readBody(resp)
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusForbidden {
					if got := pageErrorCode(t, body); got != string(apperr.Forbidden) {
						t.Errorf("code %q, want forbidden", got)
					}
					if sessionCookie(c) != nil || h.app.passwordChecks.Load() != before {
						t.Error("a refused sign-in checked the password or started a session")
					}
				} else if sessionCookie(c) == nil {
					t.Error("the twin did not sign in")
				}
			})
		}
	})
}

// secLogin signs in through the form from the given peer, optionally with
// X-Forwarded-For, straight through the route table, and returns the
// status.
func (h *harness) secLogin(t testing.TB, peer, xff, user, pass string) int {
	t.Helper()
	get := httptest.NewRequest(http.MethodGet, "/login", nil)
	get.RemoteAddr = peer
	rec := httptest.NewRecorder()
	h.app.Server.ServeHTTP(rec, get)
	m := regexp.MustCompile(`name="login_csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no sign-in form: %d", rec.Code)
	}
	post := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{
		"username": {user}, "password": {pass}, "login_csrf": {m[1]}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.AddCookie(&http.Cookie{Name: loginCookie, Value: m[1]})
	post.RemoteAddr = peer
	if xff != "" {
		post.Header.Set("X-Forwarded-For", xff)
	}
	rec = httptest.NewRecorder()
	h.app.Server.ServeHTTP(rec, post)
	return rec.Code
}

// secBasic sends GET /api/v1/synced-spaces with HTTP Basic from the peer.
func (h *harness) secBasic(peer, xff, user, pass string) int {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/synced-spaces", nil)
	req.SetBasicAuth(user, pass)
	req.RemoteAddr = peer
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := httptest.NewRecorder()
	h.app.Server.ServeHTTP(rec, req)
	return rec.Code
}

// TestClientIP_SignInThrottle: the failed sign-in throttle counts the
// client IP that the configured trusted proxies vouch for, and nothing a
// client claims. Every attempt uses a new username, so only the per-IP
// limit can bite.
func TestClientIP_SignInThrottle(t *testing.T) {
	// fail makes maxFailsPerIP failed attempts from peer, each with a new
	// username and X-Forwarded-For value (xff(i); "" for none), then
	// returns the status of one more.
	fail := func(t *testing.T, h *harness, peer string, xff func(i int) string, basic bool) int {
		t.Helper()
		try := func(i int) int {
			user := fmt.Sprintf("guess-%d", i)
			if basic {
				return h.secBasic(peer, xff(i), user, "wrong password!")
			}
			return h.secLogin(t, peer, xff(i), user, "wrong password!")
		}
		for i := range maxFailsPerIP {
			if got := try(i); got != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d, want 401", i+1, got)
			}
		}
		return try(maxFailsPerIP)
	}
	rotating := func(i int) string { return fmt.Sprintf("203.0.113.%d", i%250+1) }

	for _, basic := range []bool{false, true} {
		via := "Form"
		if basic {
			via = "Basic"
		}
		t.Run(via+"/ErrForgedXFF_NoProxiesTrusted", func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			if got := fail(t, h, "192.0.2.10:5000", rotating, basic); got != http.StatusTooManyRequests {
				t.Errorf("after %d failures with rotating X-Forwarded-For: %d, want 429", maxFailsPerIP, got)
			}
			// Another peer is not limited.
			if got := h.secLogin(t, "192.0.2.11:5000", "", "someone", "wrong password!"); got != http.StatusUnauthorized {
				t.Errorf("another peer: %d, want 401", got)
			}
		})
		t.Run(via+"/ErrForgedXFF_UntrustedPeer", func(t *testing.T) {
			h := newHarness(t, harnessOptions{trustedProxies: "198.51.100.0/24"})
			if got := fail(t, h, "192.0.2.10:5000", rotating, basic); got != http.StatusTooManyRequests {
				t.Errorf("untrusted peer, rotating X-Forwarded-For: %d, want 429", got)
			}
		})
		t.Run(via+"/ErrForgedXFFBehindTrustedProxy", func(t *testing.T) {
			// The client prepends forged addresses; the proxy appends the
			// real one, which is what counts.
			h := newHarness(t, harnessOptions{trustedProxies: "198.51.100.0/24"})
			forged := func(i int) string { return rotating(i) + ", 192.0.2.99" }
			if got := fail(t, h, "198.51.100.7:5000", forged, basic); got != http.StatusTooManyRequests {
				t.Errorf("forged entries before the proxy's: %d, want 429", got)
			}
		})
		t.Run(via+"/OK_TrustedProxy", func(t *testing.T) {
			// Behind a trusted proxy each client has its own count: the
			// proxy's address does not collect everyone's failures.
			h := newHarness(t, harnessOptions{trustedProxies: "198.51.100.0/24"})
			if got := fail(t, h, "198.51.100.7:5000", rotating, basic); got != http.StatusUnauthorized {
				t.Errorf("%d clients behind a trusted proxy: %d, want 401", maxFailsPerIP+1, got)
			}
			// And one client behind it is limited like any other.
			one := func(int) string { return "203.0.113.250" }
			if got := fail(t, h, "198.51.100.7:5000", one, basic); got != http.StatusTooManyRequests {
				t.Errorf("one client behind the proxy: %d, want 429", got)
			}
		})
		t.Run(via+"/ErrIPv6RotatingWithinA64", func(t *testing.T) {
			// An IPv6 client holds a whole /64: rotating the interface
			// identifier does not escape the limit, another /64 is apart.
			h := newHarness(t, harnessOptions{trustedProxies: "198.51.100.0/24"})
			v6 := func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }
			if got := fail(t, h, "198.51.100.7:5000", v6, basic); got != http.StatusTooManyRequests {
				t.Errorf("rotating within one /64: %d, want 429", got)
			}
			if got := h.secLogin(t, "198.51.100.7:5000", "2001:db8:1:3::1", "someone", "wrong password!"); got != http.StatusUnauthorized {
				t.Errorf("another /64: %d, want 401", got)
			}
		})
	}
}
