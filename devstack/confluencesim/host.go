package confluencesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

// Sandbox is the sandbox attribute Confluence Cloud puts on Connect
// iframes (connect.md section 5).
const Sandbox = "allow-downloads allow-forms allow-modals allow-popups allow-same-origin allow-scripts allow-top-navigation-by-user-activation"

const (
	userCookie    = "confluencesim_user"
	anonymousUser = "anonymous"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticVersion is a content hash appended to static URLs so browsers
// reload them when they change.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

func parseTemplates() (*template.Template, error) {
	t, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("confluencesim: templates: %w", err)
	}
	return t, nil
}

// layoutView is what every page's chrome needs.
type layoutView struct {
	CSSURL, JSURL string
	Users         []userOption
	Path          string
}

type userOption struct {
	Value, Label string
	Selected     bool
}

type indexView struct {
	Title              string
	Layout             layoutView
	BaseURL            string
	UserName           string
	UserRole           string
	AdminOf            []string
	Installed, Enabled bool
	AppName            string
	Pages              []pageLink
}

type pageLink struct{ Href, Name string }

type moduleView struct {
	Title      string
	Layout     layoutView
	ModuleName string
	Problem    string
	FrameURL   string
	FrameName  string
	Sandbox    string
	AppOrigin  string
	AppKey     string
}

type adminView struct {
	Title              string
	Layout             layoutView
	Flash              string
	FlashError         bool
	DescriptorURL      string
	AppKey, AppName    string
	AppBaseURL         string
	Installed, Enabled bool
	SignedInstall      bool
	KeyID              string
	InstallKeyURL      string
	ClientKey          string
	CanManage          bool
}

type errorView struct {
	Title   string
	Layout  layoutView
	Message string
}

// currentUser returns the simulator user of the request: the user switcher
// cookie, or the first seed user (the site admin) when there is none.
// Anonymous is nil.
func (s *Sim) currentUser(r *http.Request) *User {
	if c, err := r.Cookie(userCookie); err == nil {
		if c.Value == anonymousUser {
			return nil
		}
		if u := s.site.userByID[c.Value]; u != nil {
			return u
		}
	}
	if len(s.site.users) == 0 {
		return nil
	}
	return &s.site.users[0]
}

func (s *Sim) layout(r *http.Request) layoutView {
	cur := s.currentUser(r)
	l := layoutView{
		CSSURL: "/wiki/_sim/static/sim.css?v=" + staticVersion,
		JSURL:  "/wiki/_sim/static/host.js?v=" + staticVersion,
		Path:   r.URL.Path,
	}
	for i := range s.site.users {
		u := &s.site.users[i]
		label := u.DisplayName
		if u.Role != "" {
			label += " (" + u.Role + ")"
		}
		l.Users = append(l.Users, userOption{Value: u.AccountID, Label: label, Selected: u == cur})
	}
	l.Users = append(l.Users, userOption{Value: anonymousUser, Label: "Anonymous", Selected: cur == nil})
	return l
}

// render executes a page into a buffer first, so a template error becomes
// a clean error response instead of half a page.
func (s *Sim) render(w http.ResponseWriter, r *http.Request, status int, name string, view any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, view); err != nil {
		s.log.Error("render page", "template", name, "err", err)
		http.Error(w, "simulator page failed to render", http.StatusInternalServerError)
		return
	}
	_, d := s.snapshot()
	frameSrc := "'none'"
	if d != nil {
		if o := originOf(d.baseURL()); o != "" {
			frameSrc = o
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src "+frameSrc+"; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Sim) renderError(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	s.render(w, r, status, "error", errorView{Title: title, Layout: s.layout(r), Message: message})
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// handleIndex is GET /wiki/: the app's general pages and the current user.
func (s *Sim) handleIndex(w http.ResponseWriter, r *http.Request) {
	st, d := s.snapshot()
	v := indexView{Title: "Home", Layout: s.layout(r), BaseURL: s.baseURL, UserName: "Anonymous", Installed: st.Installed, Enabled: st.Enabled}
	if u := s.currentUser(r); u != nil {
		v.UserName, v.UserRole = u.DisplayName, u.Role
		for _, sp := range s.site.spaces {
			if s.site.canAdminister(sp, u.AccountID) && len(v.AdminOf) < 50 {
				v.AdminOf = append(v.AdminOf, sp.Key)
			}
		}
	}
	if d != nil {
		v.AppName = displayName(d)
		for _, m := range d.Modules.GeneralPages {
			v.Pages = append(v.Pages, pageLink{Href: modulePath(d.Key, m.Key), Name: moduleName(m)})
		}
	}
	s.render(w, r, http.StatusOK, "index", v)
}

func displayName(d *descriptor) string {
	if d.Name != "" {
		return d.Name
	}
	return d.Key
}

func moduleName(m pageModule) string {
	if m.Name.Value != "" {
		return m.Name.Value
	}
	return m.Key
}

func modulePath(appKey, moduleKey string) string {
	return "/wiki/plugins/servlet/ac/" + url.PathEscape(appKey) + "/" + url.PathEscape(moduleKey)
}

// handleModule is GET /wiki/plugins/servlet/ac/{appKey}/{moduleKey}: the
// Confluence chrome around the app's iframe.
func (s *Sim) handleModule(w http.ResponseWriter, r *http.Request) {
	st, d := s.snapshot()
	appKey, moduleKey := r.PathValue("appKey"), r.PathValue("moduleKey")
	if d == nil || d.Key != appKey {
		s.renderError(w, r, http.StatusNotFound, "App not found", "No app with this key is installed on this site.")
		return
	}
	m, ok := d.generalPage(moduleKey)
	if !ok || moduleKey == "" {
		s.renderError(w, r, http.StatusNotFound, "Page not found", "The app has no general page with this key.")
		return
	}
	v := moduleView{Title: moduleName(m), Layout: s.layout(r), ModuleName: moduleName(m), Sandbox: Sandbox,
		AppOrigin: originOf(d.baseURL()), AppKey: d.Key, FrameName: d.Key + "__" + m.Key}
	switch {
	case !st.Installed:
		v.Problem = "The app is not installed."
	case !st.Enabled:
		v.Problem = "The app is disabled. A site admin can enable it from Manage apps."
	default:
		accountID := ""
		if u := s.currentUser(r); u != nil {
			accountID = u.AccountID
		}
		src, err := s.PageURL(moduleKey, accountID)
		if err != nil {
			s.log.Error("page URL", "module", moduleKey, "err", err)
			v.Problem = "The simulator could not build the app's URL."
		}
		v.FrameURL = src
	}
	s.render(w, r, http.StatusOK, "module", v)
}

// PageURL returns the iframe URL of a general page for a user, with the
// standard context parameters and a fresh page JWT (iss = clientKey, sub =
// accountID unless anonymous, qsh of the URL relative to the app's
// baseUrl, 3 minutes). moduleKey "" means the first general page;
// accountID "" means anonymous.
func (s *Sim) PageURL(moduleKey, accountID string) (string, error) {
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return "", ErrNotInstalled
	}
	if !st.Enabled {
		return "", ErrNotEnabled
	}
	m, ok := d.generalPage(moduleKey)
	if !ok {
		return "", fmt.Errorf("confluencesim: the app has no general page %q", moduleKey)
	}
	tz := "UTC"
	if u := s.site.userByID[accountID]; u != nil && u.TimeZone != "" {
		tz = u.TimeZone
	}
	lic := "none"
	if d.EnableLicensing {
		lic = "active"
	}
	target := d.appURL(m.URL)
	base, _, _ := strings.Cut(target, "?")
	path, query := connectjwt.SplitURL(target)
	// The order is Confluence's; the set is open-ended, so cv and
	// xdm_deprecated_addon_key_do_not_use are sent too.
	std := [][2]string{
		{"xdm_e", s.origin}, {"xdm_c", "channel-" + d.Key + "__" + m.Key}, {"cp", contextPath},
		{"xdm_deprecated_addon_key_do_not_use", d.Key}, {"lic", lic}, {"cv", pluginsVersion},
		{"loc", "en-US"}, {"tz", tz},
	}
	var q strings.Builder
	q.WriteString(query)
	for _, kv := range std {
		if q.Len() > 0 {
			q.WriteByte('&')
		}
		q.WriteString(connectjwt.Encode(kv[0]) + "=" + connectjwt.Encode(kv[1]))
	}
	basePath, _ := connectjwt.SplitURL(d.baseURL())
	qsh, err := connectjwt.QSH(http.MethodGet, path, q.String(), basePath)
	if err != nil {
		return "", fmt.Errorf("confluencesim: module URL %s: %w", m.URL, err)
	}
	now := s.now()
	tok, err := connectjwt.SignHS256(connectjwt.Claims{Iss: st.ClientKey, Sub: accountID, Iat: now.Unix(), Exp: now.Add(pageTokenTTL).Unix(), Qsh: qsh}, []byte(st.SharedSecret))
	if err != nil {
		return "", err
	}
	return base + "?" + q.String() + "&jwt=" + tok, nil
}

// ContextToken mints the token AP.context.getToken returns: HS256 with the
// shared secret, iss = clientKey, sub = accountID (absent when accountID is
// "", i.e. anonymous), qsh "context-qsh", valid 15 minutes. Any accountID
// is accepted, so tests can act as users the seed does not know.
func (s *Sim) ContextToken(accountID string) (string, error) {
	st, d := s.snapshot()
	if !st.Installed || d == nil {
		return "", ErrNotInstalled
	}
	if !st.Enabled {
		return "", ErrNotEnabled
	}
	now := s.now()
	return connectjwt.SignHS256(connectjwt.Claims{Iss: st.ClientKey, Sub: accountID, Iat: now.Unix(), Exp: now.Add(contextTokenTTL).Unix(), Qsh: connectjwt.ContextQSH}, []byte(st.SharedSecret))
}

// sameOrigin reports whether a state-changing browser request comes from
// the simulator's own pages: Origin must match when present, and
// Sec-Fetch-Site must not say cross-site.
func (s *Sim) sameOrigin(r *http.Request) bool {
	switch o := r.Header.Get("Origin"); {
	case o == "null":
		// A form posted from a page served with Referrer-Policy:
		// no-referrer (every simulator page) carries Origin: null; the
		// browser's own fetch metadata still says where it came from.
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	case o != "" && o != s.origin:
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return false
	}
	return true
}

// handleContextToken is POST /wiki/_sim/context-token, called by host.js
// (same origin, with the user switcher cookie) when the app iframe asks
// for a token.
func (s *Sim) handleContextToken(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) || r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		writeJSON(w, http.StatusForbidden, map[string]any{"code": http.StatusForbidden, "message": "Context tokens are minted only for the simulator's own pages."})
		return
	}
	var body struct {
		AppKey string `json:"appKey"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": http.StatusBadRequest, "message": "Send {\"appKey\": ...} as JSON."})
		return
	}
	if body.AppKey != s.appKey() {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": http.StatusNotFound, "message": "No app with this key is installed."})
		return
	}
	accountID := ""
	if u := s.currentUser(r); u != nil {
		accountID = u.AccountID
	}
	tok, err := s.ContextToken(accountID)
	if err != nil {
		writeJSON(w, http.StatusConflict, map[string]any{"code": http.StatusConflict, "message": strings.TrimPrefix(err.Error(), "confluencesim: ")})
		return
	}
	s.log.Info("context token minted", "user", userLabel(accountID))
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// handleSwitchUser is POST /wiki/_sim/user: the user switcher. It sets a
// first-party cookie on the simulator's origin.
func (s *Sim) handleSwitchUser(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.renderError(w, r, http.StatusForbidden, "Forbidden", "The user switcher only accepts requests from the simulator's own pages.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	user := r.PostForm.Get("user")
	if user != anonymousUser && s.site.userByID[user] == nil {
		s.renderError(w, r, http.StatusBadRequest, "Unknown user", "Pick a user from the switcher.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: user, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/wiki") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/wiki/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// UserCookie returns the cookie that signs a browser into the simulator as
// accountID ("" for anonymous), for browser tests that skip the switcher.
func UserCookie(accountID string) *http.Cookie {
	if accountID == "" {
		accountID = anonymousUser
	}
	return &http.Cookie{Name: userCookie, Value: accountID, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// handleAdmin is GET /wiki/admin/apps.
func (s *Sim) handleAdmin(w http.ResponseWriter, r *http.Request) {
	s.renderAdmin(w, r, http.StatusOK, "", false)
}

func (s *Sim) renderAdmin(w http.ResponseWriter, r *http.Request, status int, flash string, isErr bool) {
	st, d := s.snapshot()
	u := s.currentUser(r)
	v := adminView{Title: "Manage apps", Layout: s.layout(r), Flash: flash, FlashError: isErr,
		DescriptorURL: s.cfg.AppDescriptorURL, Installed: st.Installed, Enabled: st.Installed && st.Enabled,
		KeyID: s.kid, InstallKeyURL: s.InstallKeysURL() + "/" + s.kid, ClientKey: st.ClientKey,
		CanManage: u != nil && u.SiteAdmin}
	if d != nil {
		v.AppKey, v.AppName, v.AppBaseURL, v.SignedInstall = d.Key, displayName(d), d.baseURL(), d.signedInstall()
	}
	s.render(w, r, status, "admin", v)
}

// handleAdminAction is POST /wiki/admin/apps/{action}: install, enable,
// disable, uninstall or rotate-secret, for site admins.
func (s *Sim) handleAdminAction(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.renderError(w, r, http.StatusForbidden, "Forbidden", "App administration only accepts requests from the simulator's own pages.")
		return
	}
	if u := s.currentUser(r); u == nil || !u.SiteAdmin {
		s.renderAdmin(w, r, http.StatusForbidden, "Only site admins can manage apps.", true)
		return
	}
	actions := map[string]struct {
		run  func(context.Context) error
		done string
	}{
		"install":       {s.Install, "The app is installed."},
		"enable":        {s.Enable, "The app is enabled."},
		"disable":       {s.Disable, "The app is disabled."},
		"uninstall":     {s.Uninstall, "The app is uninstalled."},
		"rotate-secret": {s.RotateSecret, "The shared secret was rotated (the installed callback was sent again)."},
	}
	a, ok := actions[r.PathValue("action")]
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "Not found", "No such app action.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := a.run(ctx); err != nil {
		s.log.Warn("app action failed", "action", r.PathValue("action"), "err", err)
		msg := strings.TrimPrefix(err.Error(), "confluencesim: ")
		var le *LifecycleError
		if errors.As(err, &le) {
			msg = fmt.Sprintf("The app answered the %s callback with HTTP %d.", le.Event, le.Status)
		}
		s.renderAdmin(w, r, http.StatusBadGateway, msg, true)
		return
	}
	s.renderAdmin(w, r, http.StatusOK, a.done, false)
}

// handleStatic serves the host page's CSS and JS.
func (s *Sim) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	types := map[string]string{"sim.css": "text/css; charset=utf-8", "host.js": "text/javascript; charset=utf-8"}
	ct, ok := types[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}

// handleAllJS is GET /atlassian-connect/all.js: the all.js stand-in, loaded
// cross-origin by the app's page.
func (s *Sim) handleAllJS(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/all.js")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
	_, _ = w.Write(b)
}

// handleInstallKey is GET /install-keys/{kid}: the PEM public key, as
// connect-install-keys.atlassian.com serves it.
func (s *Sim) handleInstallKey(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("kid") != s.kid {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("Not Found\n"))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.publicPEM)
}
