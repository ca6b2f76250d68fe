package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/labstack/echo/v4"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/ui"
)

const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// TestPages_EveryTemplate executes every template with its view struct,
// including values an attacker controls, and checks them with selectors.
func TestPages_EveryTemplate(t *testing.T) {
	assets, err := ui.New("/static", staticFS())
	if err != nil {
		t.Fatal(err)
	}
	pg, err := newPages(assets)
	if err != nil {
		t.Fatal(err)
	}
	a := &App{pages: pg}
	now := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	sp := func(status store.Status) store.SyncedSpace {
		return store.SyncedSpace{
			ID: "0f8fc00a-0000-4000-8000-00000000000" + string(status[0]), Name: hostile + string(status), Status: status,
			SiteBaseURL: "https://acme.atlassian.net/wiki", SiteDisplayURL: "https://wiki.acme.example",
			SpaceKey: "ACME", SpaceName: hostile, SyncName: "Handbook",
			CloudPermissions: []store.Principal{{Type: "group", ID: "g", Name: hostile}},
			LocalPermissions: []store.Principal{{Type: "user", ID: "jsmith", Name: "jsmith"}},
			SyncComments:     true, ImportedBy: "admin", CreatedAt: now, StatusReason: map[store.Status]string{store.StatusFailed: hostile}[status],
		}
	}
	spaces := &spacesView{}
	for _, st := range []store.Status{store.StatusPending, store.StatusLinked, store.StatusUnlinked, store.StatusFailed} {
		spaces.Spaces = append(spaces.Spaces, row(sp(st), sp(store.StatusLinked).ID))
	}
	spaces.Flag = &flagView{Kind: "success", Title: hostile, Text: hostile}
	views := map[string]view{
		"login":    &loginView{Error: hostile, FormUsername: hostile, Next: "/space-sync", LoginCSRF: "tok"},
		"password": &passwordView{Errors: map[string]string{"new_password": hostile}, FormError: hostile},
		"spaces":   spaces,
		"error":    &errorView{Status: 404, Code: "not_found", Heading: "Not found", Message: hostile, RequestID: "rid"},
	}
	if len(views) != len(pageNames) {
		t.Fatalf("%d views for %d templates", len(views), len(pageNames))
	}
	for name, v := range views {
		t.Run(name, func(t *testing.T) {
			e := echo.New()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
			c.Set(ctxAdmin, store.Admin{Username: "admin"})
			c.Set(ctxSession, &store.Session{CSRFToken: "csrf-token-value"})
			if err := a.render(c, http.StatusOK, name, v); err != nil {
				t.Fatal(err)
			}
			body := rec.Body.String()
			if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
				t.Error("a hostile value was rendered as markup")
			}
			doc, err := goquery.NewDocumentFromReader(bytes.NewReader(rec.Body.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if doc.Find(`link[rel="stylesheet"][href^="/static/spacesync."]`).Length() != 1 || doc.Find(`script[src^="/static/dcapp."]`).Length() != 1 {
				t.Error("the page does not load the hashed stylesheet and script")
			}
			if got, _ := doc.Find(`meta[name="csrf-token"]`).Attr("content"); got != "csrf-token-value" {
				t.Errorf("csrf meta = %q", got)
			}
			if doc.Find("#error-titles").Length() != 1 {
				t.Error("no error titles for the script")
			}
		})
	}
	t.Run("SpacesContent", func(t *testing.T) {
		e := echo.New()
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
		if err := a.render(c, http.StatusOK, "spaces", spaces); err != nil {
			t.Fatal(err)
		}
		doc, _ := goquery.NewDocumentFromReader(rec.Body)
		want := map[string]string{
			"PENDING":  "lozenge--inprogress|Waiting for Cloud confirmation",
			"LINKED":   "lozenge--success|Linked",
			"UNLINKED": "lozenge--default|Unlinked",
			"FAILED":   "lozenge--removed|Failed",
		}
		for status, w := range want {
			cls, text, _ := strings.Cut(w, "|")
			l := doc.Find(`tr[data-status="` + status + `"] .status-lozenge`)
			if !l.HasClass(cls) || l.Text() != text {
				t.Errorf("%s lozenge: class %q text %q, want %s %q", status, l.AttrOr("class", ""), l.Text(), cls, text)
			}
		}
		if doc.Find("tr.is-highlighted").AttrOr("data-status", "") != "LINKED" {
			t.Error("the imported row is not highlighted")
		}
		if got := doc.Find(`tr[data-status="LINKED"] td`).Eq(1).Find("a").AttrOr("href", ""); got != "https://wiki.acme.example" {
			t.Errorf("source site link = %q", got)
		}
		if doc.Find(`tr[data-status="FAILED"] .text-danger`).Text() != hostile {
			t.Error("the failure reason is not shown as text")
		}
		if doc.Find(`button[data-remove][disabled]`).Length() != 4 || doc.Find(`#import-open[disabled]`).Length() != 1 {
			t.Error("script-only buttons must start disabled")
		}
		if doc.Find(`button#dropzone.dropzone`).Length() != 1 || doc.Find(`dialog#import-dialog`).Length() != 1 {
			t.Error("the drop zone must be a button inside the import dialog")
		}
	})
}

func TestErrorTitles_EveryCode(t *testing.T) {
	for _, code := range apperr.Codes() {
		if errorTitles[string(code)] == "" {
			t.Errorf("no heading for %s", code)
		}
	}
	if len(errorTitles) != len(apperr.Codes())+1 { // + "network"
		t.Errorf("%d headings for %d codes", len(errorTitles), len(apperr.Codes()))
	}
}

func TestSpacesPage_AfterImport(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.signedIn()
	t.Run("Empty", func(t *testing.T) {
		doc := c.page("/space-sync")
		if doc.Find("#spaces-empty").Length() != 1 || doc.Find("#spaces-table").Length() != 0 {
			t.Error("no empty state")
		}
	})
	tok := h.fake.Mint(t, cloudtest.MintOptions{})
	var got importAnswer
	decodeJSON(t, h.importFile("My <b>space</b>", "a.token", "", []byte(tok)), &got)
	doc := c.page("/space-sync?imported=" + got.SyncedSpace.ID)
	tr := doc.Find("tr.is-highlighted")
	if tr.AttrOr("id", "") != "space-"+got.SyncedSpace.ID || tr.Find(".space-name").Text() != "My <b>space</b>" {
		t.Errorf("highlighted row %q name %q", tr.AttrOr("id", ""), tr.Find(".space-name").Text())
	}
	if f := doc.Find(".flag.flag--success .flag__title").Text(); f != "“My <b>space</b>” is synced" {
		t.Errorf("flag = %q", f)
	}
	if doc.Find("tbody tr").Length() != 1 || doc.Find("#spaces-count").Text() != "1 space" {
		t.Error("list")
	}
	t.Run("ErrUnknownHighlight", func(t *testing.T) {
		doc := c.page("/space-sync?imported=<script>")
		if doc.Find(".flag").Length() != 0 || doc.Find("tr.is-highlighted").Length() != 0 {
			t.Error("a flag or highlight for an unknown id")
		}
	})
	t.Run("ErrorPageHTML", func(t *testing.T) {
		resp := c.get("/space-sync/nope")
		body := readBody(resp)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "<code>not_found</code>") {
			t.Errorf("HTML 404 = %d", resp.StatusCode)
		}
	})
}
