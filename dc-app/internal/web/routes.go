package web

import "github.com/labstack/echo/v4"

// routes registers every route and middleware of dc-app. It is the one place
// to read to know the whole surface (DESIGN section 11).
func (a *App) routes() {
	s := a.Server
	s.Use(a.securityHeaders)

	// Operations: liveness, readiness (database and schema), Prometheus.
	s.Health(a.deps.DB)
}

// securityHeaders sets the headers every dc-app response carries. dc-app
// may never be framed.
func (a *App) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	hsts := a.deps.Config.BaseURL.Scheme == "https"
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		return next(c)
	}
}
