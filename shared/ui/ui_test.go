package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/labstack/echo/v4"
)

func newServer(t *testing.T, extra ...fs.FS) (*Assets, *echo.Echo) {
	t.Helper()
	a, err := New("/static", extra...)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	a.Register(e)
	return a, e
}

func get(e *echo.Echo, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestAssets_URL(t *testing.T) {
	app := fstest.MapFS{"app.js": {Data: []byte("console.log(1)")}}
	a, _ := newServer(t, app)
	t.Run("OK", func(t *testing.T) {
		for name, want := range map[string]*regexp.Regexp{
			Stylesheet: regexp.MustCompile(`^/static/spacesync\.[0-9a-f]{10}\.css$`),
			"app.js":   regexp.MustCompile(`^/static/app\.[0-9a-f]{10}\.js$`),
		} {
			got, err := a.URL(name)
			if err != nil || !want.MatchString(got) {
				t.Errorf("URL(%q) = %q, %v; want match %v", name, got, err, want)
			}
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		if got, err := a.URL("missing.css"); err == nil {
			t.Errorf("URL(missing.css) = %q, want an error", got)
		}
	})
	t.Run("HashFollowsContent", func(t *testing.T) {
		b, _ := New("/static", fstest.MapFS{"app.js": {Data: []byte("console.log(2)")}})
		u1, _ := a.URL("app.js")
		u2, _ := b.URL("app.js")
		if u1 == u2 {
			t.Errorf("different content, same URL %q", u1)
		}
		s1, _ := a.URL(Stylesheet)
		s2, _ := b.URL(Stylesheet)
		if s1 != s2 {
			t.Errorf("same content, different URLs %q and %q", s1, s2)
		}
	})
}

func TestNew_ErrDuplicate(t *testing.T) {
	if _, err := New("/static", fstest.MapFS{Stylesheet: {Data: []byte("x")}}); err == nil {
		t.Fatal("an app asset shadowing the shared stylesheet was accepted")
	}
	if _, err := New("/static", fstest.MapFS{"other.css": {Data: []byte("x")}}); err != nil {
		t.Fatalf("a distinct name was refused: %v", err)
	}
}

func TestAssets_Register(t *testing.T) {
	a, e := newServer(t)
	u, _ := a.URL(Stylesheet)
	t.Run("OK", func(t *testing.T) {
		rec := get(e, http.MethodGet, u, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", u, rec.Code)
		}
		if got := rec.Header().Get("Cache-Control"); got != cacheForever {
			t.Errorf("Cache-Control = %q, want %q", got, cacheForever)
		}
		if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/css") {
			t.Errorf("Content-Type = %q, want text/css", got)
		}
		body, _ := io.ReadAll(rec.Body)
		if !strings.Contains(string(body), "--ds-background-brand-bold: #0C66E4") {
			t.Error("the stylesheet does not carry the ADS brand colour")
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		rec := get(e, http.MethodHead, u, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
			t.Errorf("HEAD = %d with %d body bytes", rec.Code, rec.Body.Len())
		}
	})
	t.Run("NotModified", func(t *testing.T) {
		etag := get(e, http.MethodGet, u, nil).Header().Get("ETag")
		if rec := get(e, http.MethodGet, u, map[string]string{"If-None-Match": etag}); rec.Code != http.StatusNotModified {
			t.Errorf("conditional GET = %d, want 304", rec.Code)
		}
	})
	t.Run("ErrUnhashedOrStale", func(t *testing.T) {
		for _, p := range []string{"/static/spacesync.css", "/static/spacesync.0000000000.css", "/static/..%2fui.go"} {
			if rec := get(e, http.MethodGet, p, nil); rec.Code != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", p, rec.Code)
			}
		}
	})
}

// TestStylesheet_Generic keeps the shared sheet free of app-specific
// selectors and checks that it carries the ADS values both apps rely on.
func TestStylesheet_Generic(t *testing.T) {
	b, err := fs.ReadFile(static, "static/"+Stylesheet)
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	rules := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(strings.ReplaceAll(css, "!important", ""), "")
	for _, banned := range []string{"dc-app", "cloud-app", "dcapp", "synced", "import", "token", "space-sync"} {
		if strings.Contains(strings.ToLower(rules), banned) {
			t.Errorf("the shared stylesheet's rules mention %q; keep it generic", banned)
		}
	}
	for _, want := range []string{
		"#172B4D", "#626F86", "#F7F8F9", "#DCDFE4", "#0C66E4",
		"14px/20px", "24px/28px", "--ds-space-100: 8px",
		".btn--primary", ".btn--subtle", ".btn--danger", ".lozenge--success", ".lozenge--inprogress",
		".lozenge--removed", ".lozenge--new", ".dialog::backdrop", ".flag", ".table", ".dropzone",
		":focus-visible", "prefers-reduced-motion",
	} {
		if !strings.Contains(css, want) {
			t.Errorf("the stylesheet lacks %q", want)
		}
	}
	if strings.Count(css, "{") != strings.Count(css, "}") {
		t.Error("unbalanced braces in the stylesheet")
	}
}
