package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"spacesync.io/shared/token"
)

// Request body caps. An API upload may carry a 64 KiB token file plus the
// multipart framing and the other fields; a page form is small.
const (
	apiBodyLimit  = token.MaxUploadSize + 16<<10
	formBodyLimit = 16 << 10
)

// routes registers every route and middleware of dc-app. It is the one place
// to read to know the whole surface (DESIGN section 11).
//
// Order matters on state-changing routes: the body limit runs first (an
// oversized upload is a 413, never a misleading CSRF error), then
// authentication, then the CSRF check.
func (a *App) routes() {
	s := a.Server
	s.Use(a.securityHeaders)

	// Operations: liveness, readiness (database and schema), Prometheus.
	s.Health(a.deps.DB)

	// The shared stylesheet and dc-app's script, under content-hashed URLs.
	a.assets.Register(s.Echo)

	// Browser pages. Sign-in has its own pre-session CSRF token (a cookie
	// and a form field); every other form needs the session's token.
	s.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/space-sync") })
	s.GET("/login", a.loginPage)
	s.POST("/login", a.login, bodyLimit(formBodyLimit))
	s.POST("/logout", a.logout, bodyLimit(formBodyLimit), a.requirePageSession, a.formCSRF)
	s.GET("/account/password", a.passwordPage, a.requirePageSession)
	s.POST("/account/password", a.changePassword, bodyLimit(formBodyLimit), a.requirePageSession, a.formCSRF)
	s.GET("/space-sync", a.spacesPage, a.requirePageSession)

	// The JSON API of the contract, for the page's script (session plus
	// X-CSRF-Token) and for automation (HTTP Basic with an admin account,
	// never prompted for).
	api := s.Group("/api/v1", bodyLimit(apiBodyLimit), a.requireAPIAuth)
	api.POST("/token-previews", a.apiPreview)
	api.GET("/synced-spaces", a.apiList)
	api.POST("/synced-spaces", a.apiImport)
	api.DELETE("/synced-spaces/:id", a.apiRemove)
}

// securityHeaders sets the headers every dc-app response carries. dc-app
// may never be framed. Responses are not cached: they can carry a token's
// details or a CSRF token (static assets override this). HSTS is sent only
// on a response that goes out over TLS (a TLS connection, or a trusted
// proxy's X-Forwarded-Proto: https; see server.TLSRequest): RFC 6797
// forbids it over plain http.
func (a *App) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hsts := a.Server.TLSRequest(c.Request())
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		return next(c)
	}
}
