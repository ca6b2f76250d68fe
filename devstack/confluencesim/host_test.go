package confluencesim_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/shared/interop"
)

// page fetches a simulator page as a browser would, signed in as accountID
// ("" = anonymous, "-" = no cookie at all).
func (h *harness) page(t *testing.T, method, path, accountID string, headers map[string]string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if accountID != "-" {
		req.AddCookie(confluencesim.UserCookie(accountID))
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	c := *h.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var iframeRE = regexp.MustCompile(`(?s)<iframe\b([^>]*)>`)
var attrRE = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)

// iframeAttrs returns the attributes of the page's only iframe.
func iframeAttrs(t *testing.T, page string) map[string]string {
	t.Helper()
	m := iframeRE.FindAllStringSubmatch(page, -1)
	if len(m) != 1 {
		t.Fatalf("page has %d iframes, want 1", len(m))
	}
	attrs := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(m[0][1], -1) {
		attrs[a[1]] = html.UnescapeString(a[2])
	}
	return attrs
}

func TestHost_ModulePage(t *testing.T) {
	h := newHarness(t, harnessOpts{basePath: "/app"})
	seed := h.sim.Seed()
	sam := seed.Users[1]
	appBase := h.app.srv.URL + "/app"
	for _, tc := range []struct {
		name, user, module, wantPath, wantTZ string
	}{
		{"space admin", sam.AccountID, "space-sync", "/app/pages/space-sync", "America/New_York"},
		{"anonymous", "", "space-sync", "/app/pages/space-sync", "UTC"},
		{"template variables", seed.Users[2].AccountID, "help", "/app/pages/help", "Australia/Sydney"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.page(t, "GET", "/wiki/plugins/servlet/ac/space-sync-test/"+tc.module, tc.user, nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src "+h.app.srv.URL+";") {
				t.Errorf("CSP %q does not allow framing the app", csp)
			}
			a := iframeAttrs(t, body)
			if a["sandbox"] != "allow-downloads allow-forms allow-modals allow-popups allow-same-origin allow-scripts allow-top-navigation-by-user-activation" {
				t.Errorf("sandbox = %q", a["sandbox"])
			}
			if a["data-app-origin"] != h.app.srv.URL {
				t.Errorf("data-app-origin = %q", a["data-app-origin"])
			}
			src, err := url.Parse(a["src"])
			if err != nil {
				t.Fatal(err)
			}
			if src.Scheme+"://"+src.Host != h.app.srv.URL || src.Path != tc.wantPath {
				t.Errorf("iframe src %s, want %s%s", a["src"], h.app.srv.URL, tc.wantPath)
			}
			q := src.Query()
			for k, want := range map[string]string{
				"lic": "none", "loc": "en-US", "tz": tc.wantTZ, "cp": "/wiki", "xdm_e": h.srv.URL,
				"xdm_c": "channel-space-sync-test__" + tc.module,
			} {
				if got := q.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tc.module == "help" && !q.Has("space_key") {
				t.Errorf("template variable not filled with an empty value: %s", src.RawQuery)
			}
			res := oracle(t,
				ajwtOp{Op: "decodeSymmetric", Token: q.Get("jwt"), Secret: h.sim.SharedSecret()},
				ajwtOp{Op: "qsh", Method: "GET", URL: a["src"], BaseURL: appBase},
			)
			if res[0].Error != "" || res[1].Error != "" {
				t.Fatalf("oracle: %s %s", res[0].Error, res[1].Error)
			}
			p := res[0].Payload
			if p["iss"] != h.sim.ClientKey() || p["qsh"] != res[1].QSH {
				t.Errorf("page JWT %v, want iss clientKey and qsh %s (%s)", p, res[1].QSH, res[1].Canonical)
			}
			if sub, has := p["sub"]; (tc.user == "" && has) || (tc.user != "" && sub != tc.user) {
				t.Errorf("sub = %v, want %q", sub, tc.user)
			}
			if ttl := p["exp"].(float64) - p["iat"].(float64); ttl != 180 {
				t.Errorf("page JWT lifetime %v s, want 180", ttl)
			}
		})
	}
	t.Run("ErrUnknownModule", func(t *testing.T) {
		for _, path := range []string{"/wiki/plugins/servlet/ac/space-sync-test/nope", "/wiki/plugins/servlet/ac/other-app/space-sync"} {
			if resp, body := h.page(t, "GET", path, sam.AccountID, nil, nil); resp.StatusCode != 404 || strings.Contains(body, "<iframe") {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
		}
	})
	t.Run("ErrDisabled", func(t *testing.T) {
		if err := h.sim.Disable(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.sim.Enable(t.Context()) }()
		_, body := h.page(t, "GET", "/wiki/plugins/servlet/ac/space-sync-test/space-sync", sam.AccountID, nil, nil)
		if strings.Contains(body, "<iframe") || !strings.Contains(body, "disabled") {
			t.Errorf("disabled app page: %s", body)
		}
	})
}

func TestSim_PageURL(t *testing.T) {
	h := newHarness(t, harnessOpts{noInstall: true})
	if _, err := h.sim.PageURL("", "x"); err == nil {
		t.Error("PageURL before install succeeded")
	}
	if err := h.sim.Install(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := h.sim.PageURL("", "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, h.app.srv.URL+"/pages/space-sync?") || !strings.Contains(u, "&jwt=") {
		t.Errorf("PageURL = %s", u)
	}
	if _, err := h.sim.PageURL("missing", "acct-1"); err == nil {
		t.Error("PageURL of an unknown module succeeded")
	}
}

func TestHost_ContextToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	pat := h.sim.Seed().Users[2].AccountID
	post := func(t *testing.T, user string, headers map[string]string, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", h.srv.URL+"/wiki/_sim/context-token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(confluencesim.UserCookie(user))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	good := `{"appKey":"space-sync-test"}`
	tests := []struct {
		name    string
		user    string
		headers map[string]string
		body    string
		want    int
	}{
		{"OK", pat, map[string]string{"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"}, good, 200},
		{"OK anonymous", "", map[string]string{"Origin": h.srv.URL}, good, 200},
		{"OK no Origin but same-origin fetch metadata", pat, map[string]string{"Sec-Fetch-Site": "same-origin"}, good, 200},
		{"ErrCrossOrigin", pat, map[string]string{"Origin": h.app.srv.URL}, good, 403},
		{"ErrCrossSite", pat, map[string]string{"Origin": h.srv.URL, "Sec-Fetch-Site": "cross-site"}, good, 403},
		{"ErrNoOriginInfo", pat, nil, good, 403},
		// A page with Referrer-Policy: no-referrer posts forms with
		// Origin: null; only the browser's fetch metadata can vouch.
		{"OK null Origin with same-origin fetch metadata", pat, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, good, 200},
		{"ErrNullOrigin", pat, map[string]string{"Origin": "null"}, good, 403},
		{"ErrNullOriginCrossSite", pat, map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, good, 403},
		{"ErrOtherApp", pat, map[string]string{"Origin": h.srv.URL}, `{"appKey":"other"}`, 404},
		{"ErrNotJSON", pat, map[string]string{"Origin": h.srv.URL}, `appKey=x`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, tt.user, tt.headers, tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want != 200 {
				return
			}
			var out struct{ Token string }
			mustJSON(t, []byte(body), &out)
			res := oracle(t, ajwtOp{Op: "decodeSymmetric", Token: out.Token, Secret: h.sim.SharedSecret()})
			if res[0].Error != "" {
				t.Fatal(res[0].Error)
			}
			p := res[0].Payload
			if p["qsh"] != "context-qsh" || p["iss"] != h.sim.ClientKey() || p["exp"].(float64)-p["iat"].(float64) != 900 {
				t.Errorf("context token claims %v", p)
			}
			if sub, has := p["sub"]; (tt.user == "" && has) || (tt.user != "" && sub != tt.user) {
				t.Errorf("sub = %v, want %q", sub, tt.user)
			}
		})
	}
}

func TestHost_UserSwitcher(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	sam := h.sim.Seed().Users[1].AccountID
	same := map[string]string{"Origin": h.srv.URL}
	resp, _ := h.page(t, "POST", "/wiki/_sim/user", "-", same, url.Values{"user": {sam}, "next": {"/wiki/admin/apps"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/wiki/admin/apps" {
		t.Fatalf("switch: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == confluencesim.UserCookie("").Name {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != sam || !cookie.HttpOnly {
		t.Fatalf("cookie = %+v", cookie)
	}
	_, body := h.page(t, "GET", "/wiki/", sam, nil, nil)
	if !strings.Contains(body, "Sam Space-Admin") || !strings.Contains(body, "<code>ENG</code>, <code>DOCS</code>.") {
		t.Errorf("index as Sam does not show Sam administering exactly ENG and DOCS:\n%s", body)
	}
	if !strings.Contains(body, `href="/wiki/plugins/servlet/ac/space-sync-test/space-sync"`) {
		t.Errorf("index lacks the general page link")
	}
	for name, tc := range map[string]struct {
		headers map[string]string
		form    url.Values
		status  int
		loc     string
	}{
		"ErrUnknownUser": {same, url.Values{"user": {"ghost"}}, 400, ""},
		"ErrCrossSite":   {map[string]string{"Origin": "http://evil.example"}, url.Values{"user": {sam}}, 403, ""},
		"OpenRedirect":   {same, url.Values{"user": {"anonymous"}, "next": {"//evil.example/x"}}, 303, "/wiki/"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, _ := h.page(t, "POST", "/wiki/_sim/user", "-", tc.headers, tc.form)
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.loc {
				t.Errorf("%d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.loc)
			}
		})
	}
}

func TestHost_AdminPage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	seed := h.sim.Seed()
	ada, pat := seed.Users[0].AccountID, seed.Users[2].AccountID
	same := map[string]string{"Origin": h.srv.URL}

	_, body := h.page(t, "GET", "/wiki/admin/apps", ada, nil, nil)
	if !strings.Contains(body, `action="/wiki/admin/apps/uninstall"`) || !strings.Contains(body, h.sim.KeyID()) {
		t.Errorf("admin page for a site admin lacks controls:\n%s", body)
	}
	if strings.Contains(body, h.sim.SharedSecret()) {
		t.Error("admin page shows the shared secret")
	}
	_, body = h.page(t, "GET", "/wiki/admin/apps", pat, nil, nil)
	if strings.Contains(body, `action="/wiki/admin/apps/uninstall"`) {
		t.Error("admin page offers controls to a plain user")
	}
	if resp, _ := h.page(t, "POST", "/wiki/admin/apps/disable", pat, same, url.Values{}); resp.StatusCode != 403 {
		t.Errorf("plain user disabling: %d, want 403", resp.StatusCode)
	}
	if resp, _ := h.page(t, "POST", "/wiki/admin/apps/disable", ada, map[string]string{"Origin": h.app.srv.URL}, url.Values{}); resp.StatusCode != 403 {
		t.Errorf("cross-origin disabling: %d, want 403", resp.StatusCode)
	}
	if calls := h.app.takeCalls(); len(calls) != 0 {
		t.Fatalf("refused requests reached the app: %v", calls)
	}
	resp, body := h.page(t, "POST", "/wiki/admin/apps/disable", ada, same, url.Values{})
	if resp.StatusCode != 200 || !strings.Contains(body, "The app is disabled.") {
		t.Errorf("site admin disabling: %d", resp.StatusCode)
	}
	if calls := h.app.takeCalls(); len(calls) != 1 || calls[0].Path != "/lifecycle/disabled" {
		t.Errorf("callbacks %v", calls)
	}
	h.app.setStatus(500)
	resp, body = h.page(t, "POST", "/wiki/admin/apps/enable", ada, same, url.Values{})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "HTTP 500") {
		t.Errorf("enable refused by the app: %d", resp.StatusCode)
	}
	h.app.setStatus(200)
	for _, action := range []string{"enable", "rotate-secret", "uninstall", "install"} {
		if resp, _ := h.page(t, "POST", "/wiki/admin/apps/"+action, ada, same, url.Values{}); resp.StatusCode != 200 {
			t.Errorf("%s: %d", action, resp.StatusCode)
		}
	}
	if inst, en := h.sim.Installed(); !inst || !en {
		t.Errorf("after the admin round trip Installed() = %v, %v", inst, en)
	}
}

func TestHost_StaticAndAllJS(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp, body := h.page(t, "GET", "/atlassian-connect/all.js", "-", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("all.js: %d %v", resp.StatusCode, resp.Header)
	}
	var out struct {
		Checks []struct {
			Name, Detail string
			OK           bool
		}
	}
	interop.Node(t, "ajwt_alljs.mjs", map[string]string{"source": body, "hostOrigin": h.srv.URL, "appOrigin": h.app.srv.URL}, &out)
	if len(out.Checks) != 13 {
		t.Errorf("the all.js harness ran %d checks, want 13", len(out.Checks))
	}
	for _, c := range out.Checks {
		if !c.OK {
			t.Errorf("all.js: %s: %s", c.Name, c.Detail)
		}
	}
	_, page := h.page(t, "GET", "/wiki/", "-", nil, nil)
	for _, m := range regexp.MustCompile(`(?:href|src)="(/wiki/_sim/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		resp, _ := h.page(t, "GET", html.UnescapeString(m[1]), "-", nil, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", m[1], resp.StatusCode)
		}
	}
	if resp, _ := h.page(t, "GET", "/wiki/_sim/static/seed.json", "-", nil, nil); resp.StatusCode != 404 {
		t.Errorf("unlisted static file: %d", resp.StatusCode)
	}
}

// TestSim_LogsNoSecrets drives installs, REST calls, pages and context
// tokens and checks that the log holds neither the secret nor a JWT.
func TestSim_LogsNoSecrets(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	secret := h.sim.SharedSecret()
	h.get(t, "/wiki/api/v2/spaces?limit=1")
	h.do(t, "GET", "/wiki/api/v2/spaces", "JWT "+signAs(t, "space-sync-test", "wrong", "GET", "/wiki/api/v2/spaces"))
	h.page(t, "GET", "/wiki/plugins/servlet/ac/space-sync-test/space-sync", "", nil, nil)
	req, _ := http.NewRequest("POST", h.srv.URL+"/wiki/_sim/context-token", strings.NewReader(`{"appKey":"space-sync-test"}`))
	req.Header.Set("Origin", h.srv.URL)
	if resp, err := h.srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("context token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := h.sim.RotateSecret(t.Context()); err != nil {
		t.Fatal(err)
	}
	logText := h.log.String()
	if !strings.Contains(logText, "api call") || !strings.Contains(logText, "lifecycle callback") {
		t.Fatalf("the log is missing expected entries:\n%s", logText)
	}
	for _, bad := range []string{secret, h.sim.SharedSecret(), "eyJ"} {
		if strings.Contains(logText, bad) {
			t.Errorf("the log contains %q", bad)
		}
	}
}
