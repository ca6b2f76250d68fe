package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/server"
)

// Sessions and CSRF (DESIGN section 8).
//
// A session is a random 256-bit value in an HttpOnly, SameSite=Lax cookie
// (Secure, and named with the __Host- prefix, when the base URL is https);
// the sessions table keeps only its SHA-256, so sign-out and a password
// change revoke it on the server. Signing in always starts a new session
// and deletes the one the browser presented, so a session id planted
// before sign-in never becomes signed in.
//
// CSRF: every session has its own random token (the synchronizer-token
// pattern, stored with the session). A state-changing request made with
// the session cookie must carry it — in the X-CSRF-Token header (the
// page's fetch calls) or the _csrf form field (the page's plain forms) —
// and is refused outright when the browser says it is cross-site or
// same-site (Sec-Fetch-Site) or its Origin is not dc-app's. This is
// stricter than Echo v4.16's CSRF middleware, which lets any request with
// Sec-Fetch-Site: same-origin through without a token and needs a separate
// cookie; the per-session token needs no extra cookie, rotates with the
// session and dies with it.
//
// HTTP Basic (API only) is for automation: it skips the CSRF token only
// when the credentials verify, no session cookie is present and the request
// is not cross-site. dc-app never sends WWW-Authenticate, so a browser never
// prompts for, caches and replays Basic credentials.

const (
	ctxAdmin   = "dcapp.admin"
	ctxSession = "dcapp.session"
	// loginCookie holds the pre-session CSRF token of the sign-in form.
	loginCookie = "dcapp_login"
	csrfHeader  = "X-CSRF-Token"
	csrfField   = "_csrf"
)

func (a *App) sessionCookieName() string {
	if a.secure {
		return "__Host-dcapp_session"
	}
	return "dcapp_session"
}

func hashSessionID(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// presentedSession returns the session cookie's value, if any.
func (a *App) presentedSession(c echo.Context) (string, bool) {
	ck, err := c.Cookie(a.sessionCookieName())
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// session looks up the session the request presents.
func (a *App) session(c echo.Context) (*store.Session, error) {
	v, ok := a.presentedSession(c)
	if !ok || len(v) > 128 {
		return nil, store.ErrNotFound
	}
	s, err := a.Store.SessionByHash(c.Request().Context(), hashSessionID(v))
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func (a *App) setSessionCookie(c echo.Context, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: a.sessionCookieName(), Value: value, Path: "/",
		MaxAge: maxAge, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
}

// requirePageSession lets signed-in admins through and sends everyone else
// to the sign-in page.
func (a *App) requirePageSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s, err := a.session(c)
		if errors.Is(err, store.ErrNotFound) {
			if c.Request().Method == http.MethodGet {
				return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
			}
			return apperr.New(apperr.Unauthorized, "Your session has ended. Sign in again.")
		}
		if err != nil {
			return err
		}
		c.Set(ctxSession, s)
		c.Set(ctxAdmin, s.Admin)
		return next(c)
	}
}

// requireAPIAuth authenticates an API request by session (plus the CSRF
// header on state-changing methods) or by HTTP Basic (see the rules above).
// Its 401s never carry a Basic challenge (DESIGN section 8): a browser
// would prompt for, and then cache, the credentials; clients send them with
// the first request.
func (a *App) requireAPIAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		_, hasCookie := a.presentedSession(c)
		if user, pass, ok := r.BasicAuth(); ok {
			admin, err := a.verifyPassword(c, user, pass)
			if err != nil {
				return err
			}
			c.Set(ctxAdmin, admin)
			if !hasCookie {
				if err := a.checkSite(c); err != nil {
					return err
				}
				return next(c)
			}
			// A browser with a session cookie: the session's CSRF token
			// is required as for any cookie-authenticated request.
			s, err := a.session(c)
			if err != nil {
				return apperr.New(apperr.Forbidden, "This request carries both a password and a session cookie without a valid session. Send one or the other.")
			}
			if err := a.checkCSRF(c, s, r.Header.Get(csrfHeader)); err != nil {
				return err
			}
			return next(c)
		}
		if strings.TrimSpace(r.Header.Get("Authorization")) != "" {
			return apperr.New(apperr.Unauthorized, "Only HTTP Basic authentication with a dc-app admin account is accepted.")
		}
		s, err := a.session(c)
		if errors.Is(err, store.ErrNotFound) {
			return apperr.New(apperr.Unauthorized, "Sign in first: use your browser session, or HTTP Basic authentication with a dc-app admin account.")
		}
		if err != nil {
			return err
		}
		c.Set(ctxSession, s)
		c.Set(ctxAdmin, s.Admin)
		if err := a.checkCSRF(c, s, r.Header.Get(csrfHeader)); err != nil {
			return err
		}
		return next(c)
	}
}

// formCSRF checks the session's CSRF token in a page form's _csrf field.
// It runs after the body limit, so an oversized form is a 413.
func (a *App) formCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s, _ := c.Get(ctxSession).(*store.Session)
		if s == nil {
			return apperr.New(apperr.Unauthorized, "Your session has ended. Sign in again.")
		}
		if err := c.Request().ParseForm(); err != nil {
			return bodyError(c, err)
		}
		if err := a.checkCSRF(c, s, c.Request().PostForm.Get(csrfField)); err != nil {
			return err
		}
		return next(c)
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkSite refuses a state-changing request that the browser marks as
// coming from another site, or whose Origin is not dc-app's.
func (a *App) checkSite(c echo.Context) error {
	r := c.Request()
	if safeMethod(r.Method) {
		return nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return errCrossSite()
	}
	if o := r.Header.Get("Origin"); o != "" && o != a.origin {
		return errCrossSite()
	}
	return nil
}

// checkCSRF requires, on a state-changing request, a same-origin request
// carrying the session's CSRF token.
func (a *App) checkCSRF(c echo.Context, s *store.Session, got string) error {
	if safeMethod(c.Request().Method) {
		return nil
	}
	if err := a.checkSite(c); err != nil {
		return err
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRFToken)) != 1 {
		return apperr.New(apperr.Forbidden, "This page has expired or the request did not come from it. Reload the page and try again.")
	}
	return nil
}

func errCrossSite() *apperr.Error {
	return apperr.New(apperr.Forbidden, "Requests from other sites are refused. Open dc-app directly and try again.")
}

// verifyPassword checks a username and password, throttled per client IP
// and per username before bcrypt runs. It returns rate_limited or
// unauthorized.
func (a *App) verifyPassword(c echo.Context, username, password string) (store.Admin, error) {
	ip := server.LimitKey(c.RealIP()) // an IPv6 client is counted by its /64
	if blocked, wait := a.throttle.blocked(ip, username); blocked {
		secs := int(wait/time.Second) + 1
		return store.Admin{}, &apperr.Error{Code: apperr.RateLimited, RetryAfter: secs,
			Message: "Too many failed sign-in attempts. Wait " + strconv.Itoa((secs+59)/60) + " minute(s) and try again."}
	}
	admin, err := a.Store.AdminByUsername(c.Request().Context(), username)
	hash := a.dummyHash
	if err == nil {
		hash = []byte(admin.PasswordHash)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, err
	}
	a.passwordChecks.Add(1)
	if len(password) > 72 || bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || err != nil {
		a.throttle.fail(ip, username)
		return store.Admin{}, apperr.New(apperr.Unauthorized, "Wrong username or password.")
	}
	a.throttle.succeed(username)
	return admin, nil
}

// safeNext returns a local path to go to after sign-in.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/space-sync"
	}
	return next
}

func (a *App) loginPage(c echo.Context) error {
	if _, err := a.session(c); err == nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	v := loginView{Next: safeNext(c.QueryParam("next"))}
	if c.QueryParam("signed_out") != "" {
		v.Info = "You have signed out."
	}
	return a.renderLogin(c, http.StatusOK, v)
}

// renderLogin renders the sign-in page with a fresh pre-session CSRF
// token in a cookie and in the form.
func (a *App) renderLogin(c echo.Context, status int, v loginView) error {
	tok := randomToken()
	c.SetCookie(&http.Cookie{
		Name: loginCookie, Value: tok, Path: "/login", MaxAge: 3600,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode,
	})
	v.LoginCSRF = tok
	v.Title = "Sign in"
	return a.render(c, status, "login", &v)
}

func (a *App) login(c echo.Context) error {
	r := c.Request()
	if err := r.ParseForm(); err != nil {
		return bodyError(c, err)
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	v := loginView{FormUsername: username, Next: safeNext(r.PostForm.Get("next"))}
	ck, err := c.Cookie(loginCookie)
	if a.checkSite(c) != nil || err != nil || ck.Value == "" ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("login_csrf"))) != 1 {
		v.Error, v.ErrorCode = "The sign-in form expired. Try again.", apperr.Forbidden
		return a.renderLogin(c, http.StatusForbidden, v)
	}
	if username == "" || r.PostForm.Get("password") == "" || len(username) > 64 {
		v.Error, v.ErrorCode = "Enter your username and password.", apperr.ValidationFailed
		return a.renderLogin(c, http.StatusUnprocessableEntity, v)
	}
	admin, err := a.verifyPassword(c, username, r.PostForm.Get("password"))
	if err != nil {
		ae := apperr.As(err)
		if ae.Code != apperr.Unauthorized && ae.Code != apperr.RateLimited {
			return err
		}
		if ae.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
		}
		v.Error, v.ErrorCode = ae.Message, ae.Code
		return a.renderLogin(c, ae.Status(), v)
	}
	// A new session every time; the one presented (if any) is deleted.
	id := randomToken()
	replaces := ""
	if old, ok := a.presentedSession(c); ok {
		replaces = hashSessionID(old)
	}
	if _, err := a.Store.CreateSession(r.Context(), store.NewSession{
		AdminID: admin.ID, IDHash: hashSessionID(id), CSRFToken: randomToken(), TTL: sessionTTL, Replaces: replaces,
	}); err != nil {
		return err
	}
	a.setSessionCookie(c, id, int(sessionTTL/time.Second))
	c.SetCookie(&http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
	a.log.Info("signed in", "admin", admin.Username, "ip", c.RealIP())
	return c.Redirect(http.StatusSeeOther, v.Next)
}

func (a *App) logout(c echo.Context) error {
	s := c.Get(ctxSession).(*store.Session)
	if err := a.Store.DeleteSession(c.Request().Context(), s.IDHash); err != nil {
		return err
	}
	a.setSessionCookie(c, "", -1)
	return c.Redirect(http.StatusSeeOther, "/login?signed_out=1")
}

func (a *App) passwordPage(c echo.Context) error {
	return a.renderPassword(c, http.StatusOK, passwordView{})
}

func (a *App) renderPassword(c echo.Context, status int, v passwordView) error {
	v.Title = "Change password"
	return a.render(c, status, "password", &v)
}

// Password rules for a changed password; bcrypt reads at most 72 bytes.
const (
	minPasswordLength = 12
	maxPasswordBytes  = 72
)

func (a *App) changePassword(c echo.Context) error {
	s := c.Get(ctxSession).(*store.Session)
	f := c.Request().PostForm
	cur, next, confirm := f.Get("current_password"), f.Get("new_password"), f.Get("confirm_password")
	v := passwordView{Errors: map[string]string{}}
	switch {
	case len([]rune(strings.TrimSpace(next))) < minPasswordLength:
		v.Errors["new_password"] = "Use at least " + strconv.Itoa(minPasswordLength) + " characters, not counting spaces at either end."
	case len(next) > maxPasswordBytes:
		v.Errors["new_password"] = "Use at most " + strconv.Itoa(maxPasswordBytes) + " bytes (fewer characters if they are not plain ASCII)."
	case next == cur:
		v.Errors["new_password"] = "Choose a password different from the current one."
	}
	if confirm != next {
		v.Errors["confirm_password"] = "The two new passwords differ."
	}
	if cur == "" {
		v.Errors["current_password"] = "Enter your current password."
	}
	if len(v.Errors) > 0 {
		return a.renderPassword(c, http.StatusUnprocessableEntity, v)
	}
	if _, err := a.verifyPassword(c, s.Admin.Username, cur); err != nil {
		ae := apperr.As(err)
		if ae.Code == apperr.Unauthorized {
			v.Errors["current_password"] = "This is not your current password."
			return a.renderPassword(c, http.StatusUnprocessableEntity, v)
		}
		if ae.Code == apperr.RateLimited {
			v.FormError = ae.Message
			return a.renderPassword(c, ae.Status(), v)
		}
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), a.cost)
	if err != nil {
		return err
	}
	if err := a.Store.ChangePassword(c.Request().Context(), s.Admin.ID, string(hash), s.IDHash); err != nil {
		return err
	}
	a.log.Info("password changed; other sessions revoked", "admin", s.Admin.Username)
	return a.renderPassword(c, http.StatusOK, passwordView{Success: true})
}
