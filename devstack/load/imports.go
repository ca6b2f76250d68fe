package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// How the import scenario authenticates to dc-app's JSON API.
const (
	// AuthBasic sends HTTP Basic with the admin's password on every
	// request (automation): dc-app runs bcrypt on each.
	AuthBasic = "basic"
	// AuthSession signs in once and sends the session cookie and its CSRF
	// token (the page's own fetch calls).
	AuthSession = "session"
)

// ImportReport is the import scenario's result, by authentication.
type ImportReport struct {
	Auth []ImportAuth
	// SyncedSpaces is the number of LINKED synced spaces in dc-app's
	// database after the runs, and Links the number of links cloud-app
	// made for them: every 201 must have made one of each.
	SyncedSpaces, Links int64
}

// ImportAuth is the levels measured with one way of authenticating.
type ImportAuth struct {
	Auth   string
	Levels []Level
}

// Import measures dc-app imports end to end: POST /api/v1/synced-spaces
// with JSON {token, name}, each a fresh token. dc-app checks the header,
// asks cloud-app for a preview, stores a PENDING row, redeems at cloud-app
// and activates the row, and answers 201.
func (e *Env) Import(ctx context.Context, cfg Levels, auths []string) (ImportReport, error) {
	var rep ImportReport
	if err := e.StartDCApp(ctx); err != nil {
		return rep, err
	}
	linksBefore, err := e.Seeder.Count(ctx, "SELECT count(*) FROM links")
	if err != nil {
		return rep, err
	}
	target := e.DC.BaseURL + "/api/v1/synced-spaces"
	prepare := func(n int) ([][]byte, error) {
		toks, err := e.Seeder.Tokens(ctx, n)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, n)
		for i, t := range toks {
			if out[i], err = json.Marshal(map[string]string{"token": t.Token, "name": fmt.Sprintf("Imported %d", i)}); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	for _, auth := range auths {
		ia := ImportAuth{Auth: auth}
		for _, clients := range cfg.Clients {
			client := newClient(clients)
			hdr := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
			switch auth {
			case AuthBasic:
				req, _ := http.NewRequest(http.MethodPost, target, nil)
				req.SetBasicAuth(e.dcUser, e.dcPassword)
				hdr.Set("Authorization", req.Header.Get("Authorization"))
			case AuthSession:
				cookie, csrf, err := e.dcSignIn(ctx)
				if err != nil {
					return rep, err
				}
				hdr.Set("Cookie", cookie)
				hdr.Set("X-CSRF-Token", csrf)
				hdr.Set("Origin", e.DC.BaseURL)
			default:
				return rep, fmt.Errorf("unknown import authentication %q (want %s or %s)", auth, AuthSession, AuthBasic)
			}
			lvl, err := e.runLevel(ctx, "import/"+auth, clients, cfg, prepare, func(bodies [][]byte) Job {
				return func(ctx context.Context, i int) error {
					return send(ctx, client, http.MethodPost, target, bodies[i], hdr, http.StatusCreated)
				}
			})
			client.CloseIdleConnections()
			if err != nil {
				return rep, err
			}
			ia.Levels = append(ia.Levels, lvl)
		}
		rep.Auth = append(rep.Auth, ia)
	}
	n, err := countIn(ctx, e.PG.URL("dcapp"), "SELECT count(*) FROM synced_spaces WHERE status = 'LINKED'")
	if err != nil {
		return rep, fmt.Errorf("count dc-app's synced spaces: %w", err)
	}
	rep.SyncedSpaces = n
	links, err := e.Seeder.Count(ctx, "SELECT count(*) FROM links")
	if err != nil {
		return rep, err
	}
	rep.Links = links - linksBefore
	return rep, nil
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// dcSignIn signs in to dc-app as a browser does (the sign-in form with its
// pre-session CSRF token) and returns the session cookie, as a Cookie
// header, and the session's CSRF token from the page.
func (e *Env) dcSignIn(ctx context.Context) (cookie, csrf string, err error) {
	jar, _ := cookiejar.New(nil)
	c := newClient(1)
	c.Jar = jar
	get := func(path string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.DC.BaseURL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return string(b), err
	}
	if _, err := get("/login"); err != nil {
		return "", "", fmt.Errorf("dc-app sign-in page: %w", err)
	}
	loginURL, err := url.Parse(e.DC.BaseURL + "/login")
	if err != nil {
		return "", "", err
	}
	var loginCSRF string
	for _, ck := range jar.Cookies(loginURL) {
		if ck.Name == "dcapp_login" {
			loginCSRF = ck.Value
		}
	}
	if loginCSRF == "" {
		return "", "", fmt.Errorf("dc-app's sign-in page set no dcapp_login cookie")
	}
	form := url.Values{"username": {e.dcUser}, "password": {e.dcPassword}, "login_csrf": {loginCSRF}, "next": {"/space-sync"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, loginURL.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.DC.BaseURL)
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return "", "", fmt.Errorf("dc-app sign-in answered %d, want 303", resp.StatusCode)
	}
	page, err := get("/space-sync")
	if err != nil {
		return "", "", fmt.Errorf("dc-app page after sign-in: %w", err)
	}
	m := csrfMeta.FindStringSubmatch(page)
	if m == nil {
		return "", "", fmt.Errorf("dc-app's page has no csrf-token meta tag")
	}
	var parts []string
	apiURL, _ := url.Parse(e.DC.BaseURL + "/api/v1/synced-spaces")
	for _, ck := range jar.Cookies(apiURL) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) == 0 {
		return "", "", fmt.Errorf("dc-app set no session cookie")
	}
	return strings.Join(parts, "; "), m[1], nil
}
