package web

// Atlassian Connect (DESIGN section 6): the descriptor, the lifecycle
// callbacks, and the headers and script URL of pages Confluence frames.
// The verification itself lives in internal/connect.

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/env"
)

const (
	// maxLifecycleBody caps a lifecycle callback body (a few hundred bytes
	// in practice).
	maxLifecycleBody = 64 << 10
	// tenantCacheTTL is how long a tenant looked up for a request is
	// remembered; lifecycle events in this process drop it at once.
	tenantCacheTTL  = 30 * time.Second
	tenantCacheSize = 10000
	// installKeyTimeout bounds a fetch from the install-keys service.
	installKeyTimeout = 5 * time.Second
	// connectCDN serves Atlassian's all.js.
	connectCDN = "https://connect-cdn.atl-paas.net"
)

// initConnect builds the Connect parts of the app from the config.
func (a *App) initConnect() {
	cfg := a.deps.Config
	client := a.deps.HTTPClient
	if client == nil {
		client = connect.NewHTTPClient()
	}
	a.descriptor = connect.NewDescriptor(cfg.AppKey, cfg.BaseURL)
	a.tenants = store.NewTenantCache(a.store, tenantCacheTTL, tenantCacheSize, a.deps.Now)
	a.lifecycle = connect.NewLifecycleVerifier(connect.LifecycleConfig{
		AppKey:       cfg.AppKey,
		BaseURL:      cfg.BaseURL,
		ProductHosts: cfg.ProductHosts,
		Keys:         connect.NewInstallKeys(cfg.InstallKeysURL, client, installKeyTimeout),
		Now:          a.deps.Now,
	})
	a.auth = connect.NewAuthenticator(a.tenants, cfg.BaseURL, a.deps.Now)
	a.confluence = connect.NewClient(connect.ClientConfig{AppKey: cfg.AppKey, HTTPClient: client, Now: a.deps.Now})
}

// handleDescriptor serves the app descriptor Atlassian installs from.
func (a *App) handleDescriptor(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, a.descriptor)
}

// readLifecycleBody reads a capped callback body.
func readLifecycleBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, maxLifecycleBody+1))
	if err != nil {
		return nil, apperr.Wrap(err, apperr.ValidationFailed, "The request could not be read.")
	}
	if len(b) > maxLifecycleBody {
		return nil, apperr.New(apperr.PayloadTooLarge, "The lifecycle payload is too large.")
	}
	return b, nil
}

// refusedLifecycle logs why a callback was refused (never the token or the
// payload) and returns the error for the error hook. Nothing of a refused
// callback is stored.
func (a *App) refusedLifecycle(c echo.Context, ev connect.Event, err error) error {
	if errors.Is(err, connect.ErrSymmetricHook) {
		c.Response().Header().Set("X-Unexpected-Symmetric-Hook", "true")
	}
	var reason error = err
	if ae := (*apperr.Error)(nil); errors.As(err, &ae) && ae.Cause != nil {
		reason = ae.Cause
	}
	a.log.Warn("lifecycle callback refused", "event", string(ev), "reason", reason.Error())
	return err
}

// handleInstalled records a verified signed install: the tenant is
// upserted by clientKey and its new shared secret replaces the old one.
func (a *App) handleInstalled(c echo.Context) error {
	ctx := c.Request().Context()
	body, err := readLifecycleBody(c)
	if err != nil {
		return err
	}
	p, err := a.lifecycle.VerifySigned(ctx, c.Request(), body, connect.EventInstalled)
	if err != nil {
		return a.refusedLifecycle(c, connect.EventInstalled, err)
	}
	t, err := a.store.InstallTenant(ctx, store.Installation{
		ClientKey: p.ClientKey, BaseURL: p.BaseURL, DisplayURL: p.DisplayURL,
		ProductType: p.ProductType, SharedSecret: string(p.SharedSecret),
	})
	a.tenants.Invalidate(p.ClientKey)
	if err != nil {
		return err
	}
	a.log.Info("tenant installed", "tenant_id", t.ID, "client_key", t.ClientKey, "base_url", t.BaseURL, "state", string(t.State))
	return c.NoContent(http.StatusNoContent)
}

// handleUninstalled records a verified signed uninstall: the tenant is
// marked uninstalled and keeps its data. An unknown clientKey is answered
// 204 too (there is nothing to undo).
func (a *App) handleUninstalled(c echo.Context) error {
	ctx := c.Request().Context()
	body, err := readLifecycleBody(c)
	if err != nil {
		return err
	}
	p, err := a.lifecycle.VerifySigned(ctx, c.Request(), body, connect.EventUninstalled)
	if err != nil {
		return a.refusedLifecycle(c, connect.EventUninstalled, err)
	}
	t, err := a.store.UninstallTenant(ctx, p.ClientKey)
	a.tenants.Invalidate(p.ClientKey)
	if errors.Is(err, store.ErrNotFound) {
		a.log.Info("uninstall of an unknown tenant ignored", "client_key", p.ClientKey)
		return c.NoContent(http.StatusNoContent)
	}
	if err != nil {
		return err
	}
	a.log.Info("tenant uninstalled", "tenant_id", t.ID, "client_key", t.ClientKey)
	return c.NoContent(http.StatusNoContent)
}

func (a *App) handleEnabled(c echo.Context) error  { return a.setEnabled(c, connect.EventEnabled) }
func (a *App) handleDisabled(c echo.Context) error { return a.setEnabled(c, connect.EventDisabled) }

// setEnabled records a verified enabled or disabled callback (HS256 with
// the stored shared secret, read from the database, not the cache). For an
// uninstalled tenant it is ignored and still answered 204.
func (a *App) setEnabled(c echo.Context, ev connect.Event) error {
	ctx := c.Request().Context()
	body, err := readLifecycleBody(c)
	if err != nil {
		return err
	}
	p, _, err := a.lifecycle.VerifyShared(ctx, c.Request(), body, ev, a.store)
	if err != nil {
		return a.refusedLifecycle(c, ev, err)
	}
	applied, err := a.store.SetTenantEnabled(ctx, p.ClientKey, ev == connect.EventEnabled)
	a.tenants.Invalidate(p.ClientKey)
	if err != nil {
		return err
	}
	if !applied {
		a.log.Info("lifecycle event for an uninstalled tenant ignored", "event", string(ev), "client_key", p.ClientKey)
	} else {
		a.log.Info("tenant "+string(ev), "client_key", p.ClientKey)
	}
	return c.NoContent(http.StatusNoContent)
}

// tenantOrigin is scheme://host[:port] of a tenant URL, "" if unusable.
func tenantOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// isLoopbackTenant reports whether the tenant's base URL is on a loopback
// host (the Confluence simulator of the dev stack).
func isLoopbackTenant(t *store.Tenant) bool {
	u, err := url.Parse(t.BaseURL)
	return err == nil && u.Host != "" && env.IsLoopback(u)
}

// allJSURL is where a page for tenant t loads the Connect JavaScript API:
// Atlassian's CDN, or for a loopback tenant (the dev stack's simulator) the
// simulator's stand-in at {tenant origin}/atlassian-connect/all.js.
func (a *App) allJSURL(t *store.Tenant) string {
	if isLoopbackTenant(t) {
		if o := tenantOrigin(t.BaseURL); o != "" {
			return o + "/atlassian-connect/all.js"
		}
	}
	return connectCDN + "/all.js"
}

// pageCSP is the Content-Security-Policy of a page framed by tenant t:
// frame-ancestors names the tenant's base and display origins, every
// *.atlassian.net site and the configured product hosts; scripts come from
// us and the Connect CDN (and, for a loopback tenant, its all.js stand-in).
func (a *App) pageCSP(t *store.Tenant) string {
	var origins []string
	for _, raw := range []string{t.BaseURL, t.DisplayURL} {
		if o := tenantOrigin(raw); o != "" {
			origins = append(origins, o)
		}
	}
	scripts := "'self' " + connectCDN
	if isLoopbackTenant(t) {
		if o := tenantOrigin(t.BaseURL); o != "" {
			scripts += " " + o
		}
	}
	return "default-src 'none'; script-src " + scripts +
		"; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'" +
		"; frame-ancestors " + a.frameAncestors(origins) +
		"; base-uri 'none'; form-action 'self'"
}

// setPageHeaders sets the headers of a page Confluence frames for tenant t
// (GET /pages/...): the tenant's CSP, no X-Frame-Options (SAMEORIGIN would
// blank the page inside Confluence), Referrer-Policy no-referrer (the URL
// carries ?jwt=) and Cache-Control no-store. Call it before writing the
// body.
func (a *App) setPageHeaders(c echo.Context, t *store.Tenant) {
	h := c.Response().Header()
	h.Del("X-Frame-Options")
	h.Set("Content-Security-Policy", a.pageCSP(t))
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
