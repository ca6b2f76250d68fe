package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/ui"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticEmbed embed.FS

// staticFS holds dc-app's own assets (its script), served beside the
// shared stylesheet.
func staticFS() fs.FS {
	sub, err := fs.Sub(staticEmbed, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// pageNames are the pages; each is templates/<name>.html defining
// "content", rendered inside templates/layout.html.
var pageNames = []string{"login", "password", "spaces", "error"}

// pages are the parsed templates, parsed once at start.
type pages struct {
	t map[string]*template.Template
}

func newPages(assets *ui.Assets) (*pages, error) {
	funcs := assets.FuncMap()
	funcs["yesno"] = func(b bool) string {
		if b {
			return "Synced"
		}
		return "Not synced"
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		p.t[name] = t
	}
	return p, nil
}

// layout is what every page's frame needs; each view struct embeds it.
type layout struct {
	Title string
	// Username is the signed-in admin, empty on the sign-in page.
	Username string
	// CSRF is the session's CSRF token, for forms and the script.
	CSRF string
	Flag *flagView
	// ErrorTitles maps every error code to the heading the script shows.
	ErrorTitles map[string]string
}

func (l *layout) frame() *layout { return l }

// view is a page's typed view struct.
type view interface{ frame() *layout }

// flagView is a flag (toast) rendered with the page.
type flagView struct {
	Kind  string // success, info, warning, error
	Title string
	Text  string
}

type loginView struct {
	layout
	Error string
	// ErrorCode is the stable code of Error (DESIGN section 7), for
	// scripts and tests: forbidden, validation_failed, unauthorized or
	// rate_limited.
	ErrorCode apperr.Code
	Info      string
	// FormUsername refills the form after a refusal; it is not the
	// layout's Username (the signed-in admin, of whom there is none here).
	FormUsername string
	Next         string
	LoginCSRF    string
}

type passwordView struct {
	layout
	Errors    map[string]string
	FormError string
	Success   bool
}

type spacesView struct {
	layout
	Spaces []spaceRow
}

// spaceRow is one row of the Synced Spaces table.
type spaceRow struct {
	ID             string
	Name           string
	SyncName       string
	SiteURL        string
	SiteLabel      string
	SiteBase       string
	SpaceName      string
	SpaceKey       string
	CloudPerms     []store.Principal
	LocalPerms     []store.Principal
	Comments       bool
	Labels         bool
	Status         store.Status
	StatusLabel    string
	Lozenge        string
	StatusReason   string
	ImportedBy     string
	ImportedAt     string
	ImportedAtISO  string
	LinkedAt       string
	Highlight      bool
	WaitingOnCloud bool
}

type errorView struct {
	layout
	Status    int
	Code      string
	Heading   string
	Message   string
	RequestID string
	SignIn    bool
}

// render executes the page into a buffer first, so that a template error
// becomes a clean error page instead of half a page.
func (a *App) render(c echo.Context, status int, name string, v view) error {
	l := v.frame()
	if adm, ok := c.Get(ctxAdmin).(store.Admin); ok {
		l.Username = adm.Username
	}
	if s, ok := c.Get(ctxSession).(*store.Session); ok {
		l.CSRF = s.CSRFToken
	}
	l.ErrorTitles = errorTitles
	var buf bytes.Buffer
	if err := a.pages.t[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// renderError is the server's HTML error hook.
func (a *App) renderError(c echo.Context, e *apperr.Error, requestID string) error {
	v := &errorView{
		Status: e.Status(), Code: string(e.Code), Heading: errorTitles[string(e.Code)], Message: e.Message, RequestID: requestID,
		SignIn: e.Code == apperr.Unauthorized,
	}
	v.Title = v.Heading
	err := a.render(c, e.Status(), "error", v)
	if err != nil {
		// The error page itself failed: fall back to plain text.
		return c.String(e.Status(), e.Message)
	}
	return nil
}

const timeLayout = "2 Jan 2006, 15:04 UTC"

func row(sp store.SyncedSpace, highlight string) spaceRow {
	r := spaceRow{
		ID: sp.ID, Name: sp.Name, SyncName: sp.SyncName,
		SiteURL: sp.SiteBaseURL, SiteLabel: sp.SiteBaseURL, SiteBase: "",
		SpaceName: sp.SpaceName, SpaceKey: sp.SpaceKey,
		CloudPerms: sp.CloudPermissions, LocalPerms: sp.LocalPermissions,
		Comments: sp.SyncComments, Labels: sp.SyncLabels,
		Status: sp.Status, StatusReason: sp.StatusReason,
		ImportedBy: sp.ImportedBy, ImportedAt: sp.CreatedAt.UTC().Format(timeLayout), ImportedAtISO: sp.CreatedAt.UTC().Format(time.RFC3339),
		Highlight: sp.ID == highlight,
	}
	if sp.SiteDisplayURL != "" && sp.SiteDisplayURL != sp.SiteBaseURL {
		r.SiteURL, r.SiteLabel, r.SiteBase = sp.SiteDisplayURL, sp.SiteDisplayURL, sp.SiteBaseURL
	}
	if !sp.LinkedAt.IsZero() {
		r.LinkedAt = sp.LinkedAt.UTC().Format(timeLayout)
	}
	switch sp.Status {
	case store.StatusPending:
		r.StatusLabel, r.Lozenge, r.WaitingOnCloud = "Waiting for Cloud confirmation", "inprogress", true
	case store.StatusLinked:
		r.StatusLabel, r.Lozenge = "Linked", "success"
	case store.StatusUnlinked:
		r.StatusLabel, r.Lozenge = "Unlinked", "default"
	case store.StatusFailed:
		r.StatusLabel, r.Lozenge = "Failed", "removed"
	default:
		r.StatusLabel, r.Lozenge = string(sp.Status), "default"
	}
	return r
}

// spacesPage renders Space Sync for Confluence: the Synced Spaces table
// and Edit sync settings. After an import the script comes back with
// ?imported=<id>: that row is highlighted and a flag says how it went.
func (a *App) spacesPage(c echo.Context) error {
	spaces, err := a.Store.List(c.Request().Context())
	if err != nil {
		return err
	}
	highlight := c.QueryParam("imported")
	v := &spacesView{}
	v.Title = "Space Sync for Confluence"
	for _, sp := range spaces {
		v.Spaces = append(v.Spaces, row(sp, highlight))
		if sp.ID != highlight {
			continue
		}
		switch sp.Status {
		case store.StatusLinked:
			v.Flag = &flagView{Kind: "success", Title: "“" + sp.Name + "” is synced",
				Text: "Confluence Cloud confirmed the link with " + sp.SpaceName + " (" + sp.SpaceKey + ") on " + siteLabel(sp) + "."}
		case store.StatusPending:
			v.Flag = &flagView{Kind: "info", Title: "Waiting for Cloud confirmation",
				Text: "“" + sp.Name + "” was imported, but Confluence Cloud has not confirmed it yet. dc-app keeps asking in the background."}
		}
	}
	return a.render(c, http.StatusOK, "spaces", v)
}

func siteLabel(sp store.SyncedSpace) string {
	if sp.SiteDisplayURL != "" {
		return sp.SiteDisplayURL
	}
	return sp.SiteBaseURL
}

// errorTitles are the headings the page shows for each error code, above
// the server's message; a test checks that every code has one.
var errorTitles = map[string]string{
	string(apperr.InvalidToken):      "This is not a valid space token",
	string(apperr.UnknownKey):        "Confluence Cloud no longer recognises this token",
	string(apperr.UnsupportedToken):  "This token is in a form Space Sync does not accept",
	string(apperr.UntrustedIssuer):   "This token comes from a Space Sync that is not trusted here",
	string(apperr.UntrustedSite):     "This token comes from a Cloud site that is not trusted here",
	string(apperr.TokenNotYetValid):  "This token is not valid yet",
	string(apperr.TokenExpired):      "This token has expired",
	string(apperr.TokenUsed):         "This token has already been used",
	string(apperr.TokenRevoked):      "This token was revoked",
	string(apperr.TokenMismatch):     "This token is not the one you previewed",
	string(apperr.AlreadyImported):   "This token has already been imported",
	string(apperr.SyncDeleted):       "The sync was deleted on Confluence Cloud",
	string(apperr.TenantUninstalled): "Space Sync was uninstalled from that Cloud site",
	string(apperr.CloudUnreachable):  "Could not reach Confluence Cloud",
	string(apperr.Pending):           "Waiting for Cloud confirmation",
	string(apperr.MailRejected):      "The email was refused",
	string(apperr.ValidationFailed):  "Some fields need attention",
	string(apperr.Unauthorized):      "Sign in to continue",
	string(apperr.Forbidden):         "This request was refused",
	string(apperr.NotFound):          "Not found",
	string(apperr.PayloadTooLarge):   "This file is too large to be a token",
	string(apperr.RateLimited):       "Too many attempts",
	string(apperr.Unavailable):       "Space Sync is temporarily unavailable",
	string(apperr.Internal):          "Something went wrong",
	"network":                        "Could not reach dc-app",
}
