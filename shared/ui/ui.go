// Package ui is the look both services share: one small hand-written
// stylesheet (static/spacesync.css) with the Atlassian Design System's
// values — colour tokens, the 14/20 body and 24/28 heading type scale on
// the system font stack, the 8px spacing grid, buttons, lozenges, modal
// dialogs with a blanket, flags, tables, form fields, a drop zone, section
// messages, focus rings and reduced motion — and a helper that serves
// embedded assets under content-hashed URLs so browsers cache them forever.
//
// Decision (for both apps): a hand-written stylesheet with ADS values rather
// than @atlassian/aui. The pages are few and small; a stylesheet needs no
// npm build step in the Makefile or CI; and it works unchanged inside the
// Connect iframe, where AUI's page-level assumptions (its own fonts, global
// resets, jQuery-based components) would fight Confluence's host page. The
// sheet is generic: it has no selector that belongs to one app, so
// cloud-app's pages can use it as they are.
//
// A service builds one Assets at start-up, registers it on its router and
// hands its FuncMap to its templates:
//
//	assets, err := ui.New("/static", appStatic)   // appStatic: the app's own JS
//	assets.Register(e)
//	tmpl := template.New("").Funcs(assets.FuncMap())
//	// in a template: <link rel="stylesheet" href="{{asset "spacesync.css"}}">
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed static
var static embed.FS

// Stylesheet is the name of the shared stylesheet, for Assets.URL.
const Stylesheet = "spacesync.css"

// cacheForever is the Cache-Control of a content-hashed asset: its URL
// changes whenever its content does.
const cacheForever = "public, max-age=31536000, immutable"

// Assets are static files served under content-hashed URLs. An Assets is
// immutable once built and safe for concurrent use.
type Assets struct {
	prefix string
	byName map[string]*asset // logical name → asset
	byPath map[string]*asset // hashed file name → asset
}

type asset struct {
	name        string
	hashed      string
	contentType string
	body        []byte
}

// New returns the shared stylesheet plus the files at the root of each
// extra file system (an app's own scripts, say), served under prefix (for
// example "/static"). A name present twice is an error, so an app cannot
// shadow the shared sheet by accident.
func New(prefix string, extra ...fs.FS) (*Assets, error) {
	prefix = "/" + strings.Trim(prefix, "/")
	a := &Assets{prefix: prefix, byName: map[string]*asset{}, byPath: map[string]*asset{}}
	shared, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	for _, fsys := range append([]fs.FS{shared}, extra...) {
		if err := a.add(fsys); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Assets) add(fsys fs.FS) error {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return fmt.Errorf("ui: read assets: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		if _, dup := a.byName[name]; dup {
			return fmt.Errorf("ui: asset %q is defined twice", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("ui: read asset %q: %w", name, err)
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:5]) + ext
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		as := &asset{name: name, hashed: hashed, contentType: ct, body: body}
		a.byName[name] = as
		a.byPath[hashed] = as
	}
	return nil
}

// URL returns the content-hashed URL of the asset called name, or an error
// if there is no such asset (a template that names a missing asset then
// fails to render instead of linking nowhere).
func (a *Assets) URL(name string) (string, error) {
	as, ok := a.byName[name]
	if !ok {
		return "", fmt.Errorf("ui: no asset named %q", name)
	}
	return a.prefix + "/" + as.hashed, nil
}

// Names returns the logical names of every asset, sorted.
func (a *Assets) Names() []string {
	out := make([]string, 0, len(a.byName))
	for n := range a.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FuncMap returns the template functions: asset, the hashed URL of a named
// asset.
func (a *Assets) FuncMap() template.FuncMap {
	return template.FuncMap{"asset": a.URL}
}

// Router is what Register needs: an *echo.Echo or an *echo.Group.
type Router interface {
	GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	HEAD(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
}

// Register serves the assets under the prefix: GET and HEAD of a hashed
// name answer the file with a year-long immutable Cache-Control; any other
// name, including an asset's unhashed or out-of-date name, is not found.
func (a *Assets) Register(r Router) {
	h := a.handler
	r.GET(a.prefix+"/:file", h)
	r.HEAD(a.prefix+"/:file", h)
}

func (a *Assets) handler(c echo.Context) error {
	as, ok := a.byPath[c.Param("file")]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Cache-Control", cacheForever)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", as.contentType)
	h.Set("ETag", `"`+as.hashed+`"`)
	// ServeContent handles HEAD, ranges and If-None-Match.
	http.ServeContent(c.Response(), c.Request(), as.hashed, time.Time{}, bytes.NewReader(as.body))
	return nil
}
