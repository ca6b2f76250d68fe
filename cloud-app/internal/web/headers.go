package web

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// securityHeaders sets the headers every cloud-app response carries. Pages
// that Confluence frames replace the CSP with one naming the tenant's hosts.
// There is deliberately no X-Frame-Options: SAMEORIGIN would blank the page
// inside Confluence; frame-ancestors says who may frame us instead. HSTS is
// sent only on a response that goes out over TLS (a TLS connection, or a
// trusted proxy's X-Forwarded-Proto: https; see server.TLSRequest): RFC
// 6797 forbids it over plain http.
func (a *App) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	ancestors := a.frameAncestors(nil)
	csp := "default-src 'none'; frame-ancestors " + ancestors + "; base-uri 'none'; form-action 'none'"
	return func(c echo.Context) error {
		hsts := a.Server.TLSRequest(c.Request())
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		return next(c)
	}
}

// frameAncestors lists who may frame cloud-app: Confluence Cloud
// (*.atlassian.net), the configured product hosts, and the given tenant
// origins (base and display URL, since custom domains exist).
func (a *App) frameAncestors(tenantOrigins []string) string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add("https://*.atlassian.net")
	for _, h := range a.deps.Config.ProductHosts {
		add("https://" + h)
	}
	for _, o := range tenantOrigins {
		add(o)
	}
	return strings.Join(out, " ")
}
