package web

// The Space Sync page Confluence frames (GET /pages/space-sync; DESIGN
// sections 1 and 6): a server-rendered shell whose script (static/
// space-sync.js) lists spaces and syncs through the iframe API (ui_*.go),
// calling AP.context.getToken() before every request.

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/cloud-app/internal/spaces"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/server"
	"spacesync.io/shared/token"
	"spacesync.io/shared/ui"
)

//go:embed templates/*.html
var pageTemplateFS embed.FS

//go:embed static
var pageStaticEmbed embed.FS

// spaceSyncUI is what the page and its iframe API need beyond the app's
// store and Connect parts.
type spaceSyncUI struct {
	// assets are the shared stylesheet and the page's own script and
	// styles, under content-hashed /static URLs.
	assets *ui.Assets
	// page and errorPage are parsed once at start.
	page      *template.Template
	errorPage *template.Template
	// spaces is the per-tenant space index (safe to lose; DESIGN 3).
	spaces *spaces.Index
	// apiBase is the base URL's path ("" at the root): the script calls
	// apiBase + "/api/ui/...".
	apiBase string
}

// initSpaceSyncUI builds the page's assets, templates and space index.
func (a *App) initSpaceSyncUI() error {
	static, err := fs.Sub(pageStaticEmbed, "static")
	if err != nil {
		return err
	}
	assets, err := ui.New("/static", static)
	if err != nil {
		return err
	}
	u := &spaceSyncUI{assets: assets, apiBase: strings.TrimSuffix(a.deps.Config.BaseURL.EscapedPath(), "/")}
	if u.page, err = parsePage(assets, "space_sync"); err != nil {
		return err
	}
	if u.errorPage, err = parsePage(assets, "page_error"); err != nil {
		return err
	}
	u.spaces = spaces.New(spaces.Config{
		Load: func(ctx context.Context, t *store.Tenant) ([]connect.Space, error) {
			return a.confluence.Site(t).AllSpaces(ctx)
		},
		TTL: spaces.DefaultTTL,
		Now: a.deps.Now,
	})
	a.ui = u
	return nil
}

// parsePage parses templates/<name>.html, which defines the template name.
func parsePage(assets *ui.Assets, name string) (*template.Template, error) {
	t, err := template.New(name).Funcs(assets.FuncMap()).ParseFS(pageTemplateFS, "templates/"+name+".html")
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	return t, nil
}

// spaceSyncView is the view of the Space Sync page shell.
type spaceSyncView struct {
	// AllJSURL is where Atlassian's all.js (or the simulator's stand-in)
	// comes from.
	AllJSURL string
	// APIBase prefixes the iframe API's paths.
	APIBase string
	// SiteName is the verified site's host; SubjectPrefix is the fixed
	// start of every token email's subject, shown in the Send Token
	// dialog.
	SiteName      string
	SubjectPrefix string
	// Limits the dialogs enforce before the server does.
	MaxPermissions int
	MaxName        int
	MaxMessage     int
	MaxSubject     int
}

// pageErrorView is the view of the page's error page.
type pageErrorView struct {
	Title     string
	Message   string
	Code      string
	RequestID string
}

// handleSpaceSyncPage renders the page shell for the verified tenant and
// user (Authenticator.Page: the jwt parameter, computed qsh, a sub).
func (a *App) handleSpaceSyncPage(c echo.Context) error {
	id, err := connect.IdentityFrom(c)
	if err != nil {
		return err
	}
	t := id.Tenant
	site := siteHost(t.SiteURL())
	view := spaceSyncView{
		AllJSURL:       a.allJSURL(t),
		APIBase:        a.ui.apiBase,
		SiteName:       site,
		SubjectPrefix:  mail.SubjectPrefix(siteHost(t.BaseURL)),
		MaxPermissions: store.MaxSyncPermissions,
		MaxName:        store.MaxSyncNameLength,
		MaxMessage:     token.MaxMessageLength,
		MaxSubject:     mail.MaxSubjectLength,
	}
	a.setPageHeaders(c, t)
	return renderHTML(c, http.StatusOK, a.ui.page, view)
}

// siteHost is the lower-cased host[:port] of a site URL.
func siteHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// renderHTML executes t into a buffer first, so that a template error
// becomes a clean error response rather than half a page.
func renderHTML(c echo.Context, status int, t *template.Template, view any) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, view); err != nil {
		return apperr.Wrap(fmt.Errorf("render %s: %w", t.Name(), err), apperr.Internal, "The page could not be shown.")
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// pageErrors renders the page route's errors (a token that does not verify,
// say) as a small HTML page instead of JSON, since a person sees them in the
// Confluence frame. It logs what the error hook would have logged.
func (a *App) pageErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		ae := server.ToAppError(err)
		rid := server.RequestID(c)
		view := pageErrorView{Title: "Space Sync cannot open", Message: ae.Message, Code: string(ae.Code), RequestID: rid}
		switch {
		case ae.Code == apperr.Unauthorized:
			view.Title = "Your Confluence session could not be verified"
			view.Message = ae.Message + " Reload the page; if it keeps happening, sign in to Confluence again."
		case ae.Status() >= 500 && ae.Code != apperr.Unavailable:
			a.log.Error("request failed", "request_id", rid, "code", ae.Code, "err", err)
			view.Message = "Something went wrong on our side. If it keeps happening, report request id " + rid + "."
		}
		h := c.Response().Header()
		if id, ierr := connect.IdentityFrom(c); ierr == nil {
			a.setPageHeaders(c, id.Tenant)
		} else {
			// No verified tenant: frameable only where any Confluence
			// page of ours is, with our stylesheet and nothing else.
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors "+
				a.frameAncestors(nil)+"; base-uri 'none'; form-action 'none'")
		}
		h.Set("Cache-Control", "no-store")
		if ae.RetryAfter > 0 {
			h.Set("Retry-After", fmt.Sprint(ae.RetryAfter))
		}
		if rerr := renderHTML(c, ae.Status(), a.ui.errorPage, view); rerr != nil {
			a.log.Error("render error page", "request_id", rid, "err", rerr)
			return err
		}
		return nil
	}
}
