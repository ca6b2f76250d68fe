package web

import (
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/dbtest"
)

func uiDoc(t *testing.T, body []byte) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// cspDirective returns the values of one directive of a CSP.
func cspDirective(csp, name string) []string {
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	return nil
}

func TestSpaceSyncPage(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	site := e.sites[0]
	u, err := site.sim.PageURL("space-sync", site.user(t, uiAda))
	if err != nil {
		t.Fatal(err)
	}
	r := e.call("GET", strings.TrimPrefix(u, e.appURL), "", nil)
	if r.Code != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %s", r)
	}

	t.Run("headers", func(t *testing.T) {
		h := r.Header
		if h.Get("X-Frame-Options") != "" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("headers %v", h)
		}
		csp := h.Get("Content-Security-Policy")
		if !slices.Contains(cspDirective(csp, "frame-ancestors"), site.URL) {
			t.Errorf("frame-ancestors lacks %s: %s", site.URL, csp)
		}
		if !slices.Contains(cspDirective(csp, "script-src"), site.URL) || slices.Contains(cspDirective(csp, "script-src"), "'unsafe-inline'") {
			t.Errorf("script-src: %s", csp)
		}
		if !slices.Equal(cspDirective(csp, "connect-src"), []string{"'self'"}) {
			t.Errorf("connect-src: %s", csp)
		}
	})

	doc := uiDoc(t, r.Body)
	t.Run("scripts", func(t *testing.T) {
		scripts := doc.Find("script")
		if scripts.Length() != 2 {
			t.Fatalf("%d scripts, want all.js and the page's", scripts.Length())
		}
		allJS := scripts.Eq(0)
		if src, _ := allJS.Attr("src"); src != site.URL+"/atlassian-connect/all.js" {
			t.Errorf("all.js from %q", src)
		}
		if opts, _ := allJS.Attr("data-options"); !strings.Contains(opts, "sizeToParent:true") {
			t.Errorf("all.js data-options %q", opts)
		}
		scripts.Each(func(_ int, s *goquery.Selection) {
			if _, ok := s.Attr("src"); !ok || strings.TrimSpace(s.Text()) != "" {
				t.Errorf("an inline script: %q", s.Text())
			}
		})
		src, _ := scripts.Eq(1).Attr("src")
		if !regexp.MustCompile(`^/static/space-sync\.[0-9a-f]{10}\.js$`).MatchString(src) {
			t.Errorf("page script %q is not content-hashed", src)
		}
		js := e.call("GET", src, "", nil)
		if js.Code != 200 || !strings.Contains(js.Header.Get("Cache-Control"), "immutable") || !strings.Contains(js.Header.Get("Content-Type"), "javascript") {
			t.Fatalf("script: %d %v", js.Code, js.Header)
		}
		// The script uses only AP.context.getToken from the Connect API
		// (the stand-in throws on anything else), never cookies or storage,
		// and never inserts HTML.
		used := map[string]bool{}
		for _, m := range regexp.MustCompile(`\bAP\.[A-Za-z.]+`).FindAllString(string(js.Body), -1) {
			used[m] = true
		}
		if len(used) != 1 || !used["AP.context.getToken"] {
			t.Errorf("the script uses %v of the Connect API", used)
		}
		for _, bad := range []string{"document.cookie", "localStorage", "sessionStorage", "innerHTML", "insertAdjacentHTML", "eval("} {
			if strings.Contains(string(js.Body), bad) {
				t.Errorf("the script uses %s", bad)
			}
		}
		if !strings.Contains(string(js.Body), "credentials: 'omit'") {
			t.Errorf("the script's fetch does not omit credentials")
		}
	})

	t.Run("stylesheets", func(t *testing.T) {
		links := doc.Find(`link[rel="stylesheet"]`)
		if links.Length() != 2 {
			t.Fatalf("%d stylesheets", links.Length())
		}
		links.Each(func(_ int, l *goquery.Selection) {
			href, _ := l.Attr("href")
			if r := e.call("GET", href, "", nil); r.Code != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
				t.Errorf("%s: %d %s", href, r.Code, r.Header.Get("Content-Type"))
			}
		})
		// style-src 'self' forbids inline styles and handlers.
		doc.Find("*").Each(func(_ int, s *goquery.Selection) {
			for _, a := range s.Nodes[0].Attr {
				if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s %s=...> is blocked by the CSP", goquery.NodeName(s), a.Key)
				}
			}
		})
		if doc.Find("style").Length() != 0 {
			t.Errorf("an inline <style>")
		}
	})

	t.Run("shell", func(t *testing.T) {
		app := doc.Find("#app")
		want := map[string]string{
			"data-api-base":        "",
			"data-subject-prefix":  "[Space Sync from " + strings.TrimPrefix(site.URL, "http://") + "] ",
			"data-max-permissions": "50",
			"data-max-message":     "1000",
		}
		for k, v := range want {
			if got, ok := app.Attr(k); !ok || got != v {
				t.Errorf("#app %s = %q, want %q", k, got, v)
			}
		}
		for _, id := range []string{"#space-query", "#spaces-table", "#view-space", "#create-sync", "#actions-menu", "#flags"} {
			if doc.Find(id).Length() != 1 {
				t.Errorf("no %s", id)
			}
		}
		// Every dialog is named by its title, and every form control has a
		// label.
		doc.Find("dialog").Each(func(_ int, d *goquery.Selection) {
			id, _ := d.Attr("id")
			by, _ := d.Attr("aria-labelledby")
			if by == "" || doc.Find("#"+by).Length() != 1 {
				t.Errorf("dialog %s is not labelled", id)
			}
		})
		if n := doc.Find("dialog").Length(); n != 5 {
			t.Errorf("%d dialogs, want 5", n)
		}
		doc.Find("input, textarea, select").Each(func(_ int, in *goquery.Selection) {
			id, _ := in.Attr("id")
			_, aria := in.Attr("aria-label")
			if aria || in.ParentsFiltered("label").Length() > 0 || (id != "" && doc.Find(`label[for="`+id+`"]`).Length() == 1) {
				return
			}
			t.Errorf("input %q has no label", id)
		})
		// Described-by ids exist.
		doc.Find("[aria-describedby]").Each(func(_ int, s *goquery.Selection) {
			v, _ := s.Attr("aria-describedby")
			for _, id := range strings.Fields(v) {
				if doc.Find("#"+id).Length() != 1 {
					t.Errorf("aria-describedby names a missing #%s", id)
				}
			}
		})
	})

	t.Run("ErrUnauthorized is an HTML page", func(t *testing.T) {
		bad := e.call("GET", "/pages/space-sync?jwt=x.y.z", "", nil)
		if bad.Code != http.StatusUnauthorized || !strings.HasPrefix(bad.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("refused page: %s", bad)
		}
		d := uiDoc(t, bad.Body)
		if d.Find(".section-message--error h1").Length() != 1 || bad.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("error page: %s", bad)
		}
		csp := bad.Header.Get("Content-Security-Policy")
		if !slices.Equal(cspDirective(csp, "style-src"), []string{"'self'"}) || cspDirective(csp, "script-src") != nil {
			t.Errorf("error page CSP %q", csp)
		}
	})
}

// TestSpaceSyncTemplates executes every template with its view struct.
func TestSpaceSyncTemplates(t *testing.T) {
	e := newUIEnv(t, dbtest.SQLite(t, migrations.FS), uiOptions{})
	views := []struct {
		name string
		run  func() (string, error)
	}{
		{"space_sync", func() (string, error) {
			var b bytes.Buffer
			err := e.app.ui.page.Execute(&b, spaceSyncView{AllJSURL: "https://connect-cdn.atl-paas.net/all.js", SiteName: `x"<b>.atlassian.net`,
				SubjectPrefix: "[Space Sync from x] ", MaxPermissions: 50, MaxName: 255, MaxMessage: 1000, MaxSubject: 150})
			return b.String(), err
		}},
		{"page_error", func() (string, error) {
			var b bytes.Buffer
			err := e.app.ui.errorPage.Execute(&b, pageErrorView{Title: "T", Message: "<script>alert(1)</script>", Code: "unauthorized", RequestID: "r1"})
			return b.String(), err
		}},
	}
	var names []string
	for _, v := range views {
		names = append(names, v.name)
		out, err := v.run()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if strings.Contains(out, "<script>alert") || strings.Contains(out, `x"<b>`) {
			t.Errorf("%s: unescaped input", v.name)
		}
	}
	entries, err := pageTemplateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range entries {
		files = append(files, strings.TrimSuffix(f.Name(), ".html"))
	}
	sort.Strings(names)
	if !slices.Equal(files, names) {
		t.Errorf("templates %v, tested %v", files, names)
	}
}
