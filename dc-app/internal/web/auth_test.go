package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/dc-app/internal/config"
	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
)

func sessionCookie(c *client) *http.Cookie {
	u, _ := url.Parse(c.h.URL)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == "dcapp_session" {
			return ck
		}
	}
	return nil
}

// withCookie returns a fresh client carrying only the given session
// cookie value.
func (h *harness) withCookie(value string) *client {
	c := h.newClient()
	u, _ := url.Parse(h.URL)
	c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "dcapp_session", Value: value, Path: "/"}})
	return c
}

func TestBootstrap_GeneratedPassword(t *testing.T) {
	d := dbtest.SQLite(t, migrations.FS)
	h := newHarness(t, harnessOptions{db: d, password: "-"})
	m := regexp.MustCompile(`\n    (\S{24})\n`).FindStringSubmatch(h.out.String())
	if m == nil {
		t.Fatalf("no generated password printed to Out:\n%s", h.out.String())
	}
	pw := m[1]
	if strings.Contains(h.logs.String(), pw) {
		t.Error("the generated password reached the log")
	}
	t.Run("OK", func(t *testing.T) {
		if resp := h.newClient().login(adminUser, pw); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("sign in with the generated password = %d", resp.StatusCode)
		}
	})
	t.Run("ErrWrongPassword", func(t *testing.T) {
		if resp := h.newClient().login(adminUser, pw+"x"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("sign in with a wrong password = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("OnlyOnce", func(t *testing.T) {
		out := &syncBuffer{}
		cfg, _ := config.Load(env.FromMap(map[string]string{"DC_APP_BASE_URL": h.URL, "DC_APP_DATA_DIR": t.TempDir()}))
		app, err := New(context.Background(), Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DB: d,
			SecretKey: secret.NewKey(), Out: out, PasswordCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		app.Close()
		if out.String() != "" {
			t.Errorf("second start printed %q", out.String())
		}
	})
}

func TestLogin(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Run("OK", func(t *testing.T) {
		c := h.newClient()
		resp := c.login(adminUser, adminPass)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/space-sync" {
			t.Fatalf("sign in = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		ck := sessionCookie(c)
		if ck == nil {
			t.Fatal("no session cookie")
		}
		var raw string
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "dcapp_session=") {
				raw = v
			}
		}
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(raw, want) {
				t.Errorf("session cookie %q lacks %s", raw, want)
			}
		}
		if strings.Contains(raw, "Secure") {
			t.Errorf("session cookie %q is Secure on plain http", raw)
		}
		doc := c.page("/space-sync")
		if got := doc.Find("h1").Text(); got != "Space Sync for Confluence" {
			t.Errorf("h1 = %q", got)
		}
	})
	t.Run("ErrWrongPassword", func(t *testing.T) {
		c := h.newClient()
		resp := c.login(adminUser, "wrong password!")
		body := readBody(resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password.") {
			t.Errorf("wrong password = %d\n%s", resp.StatusCode, body)
		}
		if sessionCookie(c) != nil {
			t.Error("a failed sign-in set a session cookie")
		}
		if strings.Contains(body, "Signed in as") || strings.Contains(body, "Sign out") {
			t.Error("a failed sign-in page shows a signed-in header")
		}
	})
	t.Run("ErrUnknownUser", func(t *testing.T) {
		resp := h.newClient().login("mallory", adminPass)
		body := readBody(resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password.") {
			t.Errorf("unknown user = %d", resp.StatusCode)
		}
		// The typed name refills the form, and nothing else.
		if !strings.Contains(body, `value="mallory"`) || strings.Contains(body, "Signed in as") {
			t.Errorf("the refused page does not just refill the username:\n%s", body)
		}
	})
	t.Run("ErrNoLoginToken", func(t *testing.T) {
		c := h.newClient()
		resp := c.postForm("/login", url.Values{"username": {adminUser}, "password": {adminPass}}, nil)
		if resp.StatusCode != http.StatusForbidden || sessionCookie(c) != nil {
			t.Errorf("sign-in without the form's token = %d", resp.StatusCode)
		}
	})
	t.Run("ErrCrossSite", func(t *testing.T) {
		c := h.newClient()
		doc := c.page("/login")
		tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
		resp := c.postForm("/login", url.Values{"username": {adminUser}, "password": {adminPass}, "login_csrf": {tok}},
			map[string]string{"Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusForbidden || sessionCookie(c) != nil {
			t.Errorf("cross-site sign-in = %d", resp.StatusCode)
		}
	})
	t.Run("ErrOpenRedirect", func(t *testing.T) {
		c := h.newClient()
		doc := c.page("/login?next=//evil.example/")
		tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
		next, _ := doc.Find(`input[name="next"]`).Attr("value")
		resp := c.postForm("/login", url.Values{"username": {adminUser}, "password": {adminPass}, "login_csrf": {tok}, "next": {next}}, nil)
		if loc := resp.Header.Get("Location"); loc != "/space-sync" {
			t.Errorf("redirect after sign-in = %q", loc)
		}
	})
	t.Run("PagesNeedSession", func(t *testing.T) {
		resp := h.newClient().get("/space-sync")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("anonymous page = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestLogin_SecureCookieBehindTLS: with an https base URL the session
// cookie is Secure and __Host- prefixed.
func TestLogin_SecureCookieBehindTLS(t *testing.T) {
	h := newHarness(t, harnessOptions{baseURL: "https://dc.example.com"})
	c := h.newClient()
	doc := c.page("/login")
	tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
	// The jar keeps the Secure login cookie to itself over http; send it.
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/login", strings.NewReader(url.Values{
		"username": {adminUser}, "password": {adminPass}, "login_csrf": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: tok})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in = %d", resp.StatusCode)
	}
	var raw string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "__Host-dcapp_session=") {
			raw = v
		}
	}
	for _, want := range []string{"Secure", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(raw, want) {
			t.Errorf("session cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Domain=") {
		t.Errorf("a __Host- cookie must not name a domain: %q", raw)
	}
	// This request reached dc-app over plain http: no HSTS (RFC 6797
	// section 7.2). TestSecurityHeaders_HSTS covers TLS.
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		t.Errorf("HSTS %q over plain http", v)
	}
}

func TestLogin_SessionFixation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Run("PlantedUnknownID", func(t *testing.T) {
		planted := "attacker-chosen-session-id-0123456789abcdefghij"
		c := h.withCookie(planted)
		if resp := c.login(adminUser, adminPass); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in = %d", resp.StatusCode)
		}
		if ck := sessionCookie(c); ck == nil || ck.Value == planted {
			t.Fatalf("the session id was not rotated at sign-in: %v", ck)
		}
		if resp := h.withCookie(planted).get("/space-sync"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the planted id is signed in: %d", resp.StatusCode)
		}
	})
	t.Run("PresentedSessionReplaced", func(t *testing.T) {
		// An attacker's own valid session planted in the victim's browser
		// is replaced, not reused, when the victim signs in.
		attacker := h.signedIn()
		old := sessionCookie(attacker).Value
		victim := h.newClient()
		doc := victim.page("/login")
		tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
		u, _ := url.Parse(h.URL)
		victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "dcapp_session", Value: old, Path: "/"}})
		if resp := victim.postForm("/login", url.Values{"username": {adminUser}, "password": {adminPass}, "login_csrf": {tok}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in = %d", resp.StatusCode)
		}
		if got := sessionCookie(victim).Value; got == old {
			t.Fatal("the presented session id was kept")
		}
		if resp := h.withCookie(old).get("/space-sync"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the replaced session still works: %d", resp.StatusCode)
		}
		if resp := victim.get("/space-sync"); resp.StatusCode != http.StatusOK {
			t.Errorf("the new session does not work: %d", resp.StatusCode)
		}
	})
}

func TestLogout_RevokesSession(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	old := sessionCookie(c).Value
	t.Run("ErrNoCSRF", func(t *testing.T) {
		resp := c.postForm("/logout", url.Values{}, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout without the token = %d, want 403", resp.StatusCode)
		}
		if resp := h.withCookie(old).get("/space-sync"); resp.StatusCode != http.StatusOK {
			t.Errorf("a refused logout ended the session: %d", resp.StatusCode)
		}
	})
	t.Run("OK", func(t *testing.T) {
		resp := c.postForm("/logout", url.Values{"_csrf": {c.csrf}}, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?signed_out=1" {
			t.Fatalf("logout = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// The cookie value itself no longer works: the server revoked it.
		stale := h.withCookie(old)
		if resp := stale.get("/space-sync"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("page with the revoked session = %d, want a redirect to sign in", resp.StatusCode)
		}
		stale.csrf = c.csrf
		if resp := stale.api(http.MethodGet, "/api/v1/synced-spaces", "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("API with the revoked session = %d, want 401", resp.StatusCode)
		}
	})
}

func TestLogin_Throttled(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for i := 0; i < maxFailsPerUser; i++ {
		if resp := h.newClient().login(adminUser, "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	checks := h.app.passwordChecks.Load()
	t.Run("ErrUserBlocked", func(t *testing.T) {
		resp := h.newClient().login(adminUser, adminPass) // even the right password waits
		body := readBody(resp)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed sign-in attempts") {
			t.Errorf("throttled sign-in = %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		r := h.basic(adminUser, adminPass, http.MethodGet, "/api/v1/synced-spaces", "", nil)
		if e := apiError(t, r); r.StatusCode != http.StatusTooManyRequests || e.Code != apperr.RateLimited {
			t.Errorf("throttled Basic = %d %s", r.StatusCode, e.Code)
		}
		if got := h.app.passwordChecks.Load(); got != checks {
			t.Errorf("bcrypt ran %d times while throttled", got-checks)
		}
	})
	t.Run("OtherUserNotBlocked", func(t *testing.T) {
		if resp := h.newClient().login("someone-else", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("another username = %d, want 401 (only the IP's count applies)", resp.StatusCode)
		}
		if got := h.app.passwordChecks.Load(); got != checks+1 {
			t.Errorf("bcrypt ran %d times for an unthrottled attempt, want 1", got-checks)
		}
	})
	t.Run("ErrIPBlocked", func(t *testing.T) {
		for i := maxFailsPerUser + 1; i < maxFailsPerIP; i++ {
			h.newClient().login("user"+string(rune('a'+i)), "wrong password!")
		}
		if resp := h.newClient().login("fresh-user", "wrong password!"); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("after %d failures from one IP = %d, want 429", maxFailsPerIP, resp.StatusCode)
		}
	})
}

func TestThrottle_Window(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	th := newThrottle(time.Minute, 3, 2, func() time.Time { return now })
	th.fail("ip", "u")
	th.fail("ip", "u")
	if b, _ := th.blocked("ip", "u"); !b {
		t.Fatal("not blocked after the per-user limit")
	}
	if b, _ := th.blocked("ip", "v"); b {
		t.Fatal("another user blocked before the per-IP limit")
	}
	now = now.Add(time.Minute)
	if b, _ := th.blocked("ip", "u"); b {
		t.Fatal("still blocked after the window")
	}
	th.fail("ip", "u")
	th.succeed("u")
	if b, _ := th.blocked("ip", "u"); b {
		t.Fatal("blocked after a success")
	}
}

func TestChangePassword(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c1, c2 := h.signedIn(), h.signedIn()
	newPass := "a brand new password"
	t.Run("ErrWrongCurrent", func(t *testing.T) {
		resp := c1.postForm("/account/password", url.Values{"_csrf": {c1.csrf}, "current_password": {"nope nope nope"},
			"new_password": {newPass}, "confirm_password": {newPass}}, nil)
		if body := readBody(resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "This is not your current password.") {
			t.Errorf("wrong current password = %d", resp.StatusCode)
		}
	})
	t.Run("ErrTooShort", func(t *testing.T) {
		resp := c1.postForm("/account/password", url.Values{"_csrf": {c1.csrf}, "current_password": {adminPass},
			"new_password": {"short"}, "confirm_password": {"short"}}, nil)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("short password = %d", resp.StatusCode)
		}
	})
	t.Run("ErrOnlySpaces", func(t *testing.T) {
		for _, p := range []string{strings.Repeat(" ", 12), " \t  short  \t  "} {
			resp := c1.postForm("/account/password", url.Values{"_csrf": {c1.csrf}, "current_password": {adminPass},
				"new_password": {p}, "confirm_password": {p}}, nil)
			if body := readBody(resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "not counting spaces") {
				t.Errorf("password %q = %d", p, resp.StatusCode)
			}
		}
	})
	t.Run("OK", func(t *testing.T) {
		resp := c1.postForm("/account/password", url.Values{"_csrf": {c1.csrf}, "current_password": {adminPass},
			"new_password": {newPass}, "confirm_password": {newPass}}, nil)
		if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Password changed") {
			t.Fatalf("change = %d", resp.StatusCode)
		}
		if resp := c1.get("/space-sync"); resp.StatusCode != http.StatusOK {
			t.Errorf("the session that changed the password was signed out: %d", resp.StatusCode)
		}
		if resp := c2.get("/space-sync"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("another session survived the change: %d", resp.StatusCode)
		}
		if resp := h.newClient().login(adminUser, adminPass); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("old password still works: %d", resp.StatusCode)
		}
		if resp := h.newClient().login(adminUser, newPass); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("new password does not work: %d", resp.StatusCode)
		}
	})
}

func TestCSRF(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	tok := h.fake.Mint(t, cloudtest.MintOptions{})
	preview := func(mod func(r *http.Request)) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/token-previews", strings.NewReader(tok))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-CSRF-Token", c.csrf)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		mod(req)
		return c.do(req)
	}
	for _, tc := range []struct {
		name string
		mod  func(r *http.Request)
		want int
	}{
		{"OK", func(*http.Request) {}, http.StatusOK},
		{"OKNoFetchMetadata", func(r *http.Request) { r.Header.Del("Sec-Fetch-Site") }, http.StatusOK},
		{"ErrCrossSiteWithToken", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, http.StatusForbidden},
		{"ErrSameSite", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, http.StatusForbidden},
		{"ErrForeignOrigin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		{"ErrMissingToken", func(r *http.Request) { r.Header.Del("X-CSRF-Token") }, http.StatusForbidden},
		{"ErrWrongToken", func(r *http.Request) { r.Header.Set("X-CSRF-Token", c.csrf+"x") }, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := h.fake.TotalCalls()
			resp := preview(tc.mod)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.want, readBody(resp))
			}
			if tc.want == http.StatusForbidden {
				if e := apiError(t, resp); e.Code != apperr.Forbidden {
					t.Errorf("code = %s", e.Code)
				}
				if h.fake.TotalCalls() != calls {
					t.Error("a refused request reached cloud-app")
				}
			}
		})
	}
	t.Run("ErrCrossSiteImport", func(t *testing.T) {
		ct, body := multipartBody(t, "ACME.token", "", []byte(tok), map[string]string{"name": "x"})
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/synced-spaces", body)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp := c.do(req)
		if resp.StatusCode != http.StatusForbidden || h.rows() != 0 {
			t.Errorf("cross-site import = %d, %d rows", resp.StatusCode, h.rows())
		}
	})
	t.Run("ErrCrossSiteLogoutForm", func(t *testing.T) {
		resp := c.postForm("/logout", url.Values{"_csrf": {c.csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site logout = %d", resp.StatusCode)
		}
	})
}

func TestBasicAuth(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Run("OK", func(t *testing.T) {
		resp := h.basic(adminUser, adminPass, http.MethodGet, "/api/v1/synced-spaces", "", nil)
		if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"results":[]`) {
			t.Errorf("Basic list = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("ErrWrongPassword", func(t *testing.T) {
		resp := h.basic(adminUser, "wrong password!", http.MethodGet, "/api/v1/synced-spaces", "", nil)
		e := apiError(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || e.Code != apperr.Unauthorized {
			t.Errorf("wrong Basic password = %d %s", resp.StatusCode, e.Code)
		}
		if v := resp.Header.Get("WWW-Authenticate"); v != "" {
			t.Errorf("WWW-Authenticate = %q; dc-app must never invite Basic", v)
		}
	})
	t.Run("ErrNoCredentials", func(t *testing.T) {
		resp, _ := http.Get(h.URL + "/api/v1/synced-spaces")
		if e := apiError(t, resp); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "" || e.Code != apperr.Unauthorized {
			t.Errorf("anonymous API = %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("ErrOtherScheme", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/api/v1/synced-spaces", nil)
		req.Header.Set("Authorization", "Bearer abc")
		resp, _ := http.DefaultClient.Do(req)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Bearer = %d", resp.StatusCode)
		}
	})
	t.Run("ErrCrossSite", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/token-previews", strings.NewReader("x"))
		req.SetBasicAuth(adminUser, adminPass)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, _ := http.DefaultClient.Do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site Basic POST = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("ErrWithCookieNoCSRF", func(t *testing.T) {
		c := h.signedIn()
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/token-previews", strings.NewReader("x"))
		req.SetBasicAuth(adminUser, adminPass)
		resp := c.do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("Basic with a session cookie and no CSRF token = %d, want 403", resp.StatusCode)
		}
	})
}

func TestBodyLimit_BeforeCSRF(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	big := bytes.Repeat([]byte("."), 10<<20)
	t.Run("DeclaredLength", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/token-previews", bytes.NewReader(big))
		req.Header.Set("Content-Type", "application/octet-stream") // and no CSRF token
		resp := c.do(req)
		if e := apiError(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != apperr.PayloadTooLarge {
			t.Errorf("oversized upload without a CSRF token = %d %s, want 413 payload_too_large", resp.StatusCode, e.Code)
		}
	})
	t.Run("Chunked", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/token-previews", io.MultiReader(bytes.NewReader(big[:1<<20])))
		req.ContentLength = -1 // chunked: no declared length
		req.Header.Set("X-CSRF-Token", c.csrf)
		resp := c.do(req)
		if e := apiError(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != apperr.PayloadTooLarge {
			t.Errorf("chunked oversized upload = %d %s, want 413", resp.StatusCode, e.Code)
		}
	})
	t.Run("ChunkedMultipart", func(t *testing.T) {
		ct, body := multipartBody(t, "big.token", "text/plain", big[:1<<20], map[string]string{"name": "x"})
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/synced-spaces", io.MultiReader(body))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ct)
		resp := c.do(req)
		if e := apiError(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != apperr.PayloadTooLarge {
			t.Errorf("chunked multipart without a CSRF token = %d %s, want 413", resp.StatusCode, e.Code)
		}
	})
	t.Run("FormPage", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/logout", io.MultiReader(strings.NewReader("_csrf="+c.csrf+"&pad="+strings.Repeat("a", 32<<10))))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		resp := c.do(req)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized form = %d, want 413", resp.StatusCode)
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	for _, p := range []string{"/login", "/space-sync", "/api/v1/synced-spaces"} {
		resp := c.get(p)
		readBody(resp)
		hd := resp.Header
		if hd.Get("X-Frame-Options") != "DENY" || !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s can be framed: XFO %q CSP %q", p, hd.Get("X-Frame-Options"), hd.Get("Content-Security-Policy"))
		}
		if hd.Get("Cache-Control") != "no-store" || hd.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Cache-Control %q, nosniff %q", p, hd.Get("Cache-Control"), hd.Get("X-Content-Type-Options"))
		}
	}
	doc := c.page("/space-sync")
	for _, sel := range []string{`link[rel="stylesheet"]`, `script[src]`} {
		attr := "href"
		if sel == `script[src]` {
			attr = "src"
		}
		u, _ := doc.Find(sel).Attr(attr)
		resp := c.get(u)
		readBody(resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("asset %s = %d, Cache-Control %q", u, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}
