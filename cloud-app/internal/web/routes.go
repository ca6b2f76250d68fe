package web

import (
	"github.com/labstack/echo/v4/middleware"

	"spacesync.io/cloud-app/internal/connect"
)

// routes registers every route and middleware of cloud-app. It is the one
// place to read to know the whole surface (DESIGN section 11).
func (a *App) routes() {
	s := a.Server
	s.Use(a.securityHeaders)

	// Operations: liveness, readiness (database and schema), Prometheus.
	s.Health(a.deps.DB)

	// Connect (connect.go; DESIGN section 6). Atlassian fetches the
	// descriptor, and Confluence POSTs the lifecycle callbacks: installed
	// and uninstalled signed RS256 (key from the install-keys service),
	// enabled and disabled HS256 with the tenant's shared secret. Pages
	// use a.auth.Page() (jwt query parameter, computed qsh) and the iframe
	// API a.auth.Context() (Authorization: JWT, qsh "context-qsh").
	s.GET(connect.PathDescriptor, a.handleDescriptor)
	s.POST("/lifecycle/installed", a.handleInstalled)
	s.POST("/lifecycle/uninstalled", a.handleUninstalled)
	s.POST("/lifecycle/enabled", a.handleEnabled)
	s.POST("/lifecycle/disabled", a.handleDisabled)

	// dc-app-facing API (api_v1.go; DESIGN sections 5 and 11). Called by
	// dc-app, server to server, with no session: the token, or after
	// linking the link secret (Authorization: Bearer), is the credential.
	// Every response is no-store; bodies are capped at 64 KiB; failed
	// previews and redemptions are rate-limited per client IP.
	{
		v1 := s.Group("/api/v1", apiV1NoStore)
		limit := middleware.BodyLimit(apiV1BodyLimit)
		v1.POST("/token-previews", a.handlePreview, a.limitFailures, limit)
		v1.POST("/redemptions", a.handleRedeem, a.limitFailures, limit)
		v1.GET("/links/self", a.handleLinkSelf, limit)
		v1.DELETE("/links/self", a.handleUnlinkSelf, limit)
	}

	// Space Sync page and iframe API (page.go, ui_*.go; DESIGN sections 1,
	// 6, 8 and 11). Confluence frames the page with a page JWT (?jwt=,
	// computed qsh); its script (static/space-sync.js, served with the
	// shared stylesheet under content-hashed /static URLs) calls the API
	// with a fresh AP.context.getToken() token (Authorization: JWT, qsh
	// "context-qsh") and never a cookie. The tenant is the token's; every
	// handler checks the caller's space permissions with Confluence (state
	// changes: admin of the sync's stored space). Responses are no-store;
	// bodies are capped at 64 KiB.
	a.ui.assets.Register(s)
	s.GET(connect.PathSpaceSyncPage, a.handleSpaceSyncPage, a.pageErrors, a.auth.Page())
	{
		ui := s.Group("/api/ui", uiNoStore, middleware.BodyLimit(uiBodyLimit), a.auth.Context())
		ui.GET("/spaces", a.handleUISpaces)
		ui.GET("/spaces/:spaceKey/syncs", a.handleUISpaceSyncs)
		ui.POST("/spaces/:spaceKey/syncs", a.handleUICreateSync)
		// The Create New Sync dialog's starting permissions (the space's
		// admins); an addition to the contract's routes.
		ui.GET("/spaces/:spaceKey/default-permissions", a.handleUIDefaultPermissions)
		ui.GET("/syncs/:id", a.handleUISyncDetails)
		ui.DELETE("/syncs/:id", a.handleUIDeleteSync)
		ui.POST("/syncs/:id/token-downloads", a.handleUIDownloadToken)
		ui.POST("/syncs/:id/token-emails", a.handleUISendToken)
		ui.POST("/syncs/:id/revocations", a.handleUIRevokeTokens)
		ui.GET("/token-emails/:id", a.handleUIEmailStatus)
		ui.GET("/principals", a.handleUIPrincipals)
	}
}
