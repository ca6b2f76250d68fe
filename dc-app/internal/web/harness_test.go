package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/dc-app/internal/config"
	"spacesync.io/dc-app/internal/importer"
	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const (
	adminUser = "admin"
	adminPass = "correct horse battery"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harnessOptions struct {
	db           *db.DB
	trustedSites string
	password     string // "" means adminPass; "-" means generate
	retry        importer.RetryPolicy
	// extraTrusted are more cloud-app URLs to trust besides the fake.
	extraTrusted []string
	// key is DC_APP_SECRET_KEY; nil means a new one.
	key *secret.Key
	// baseURL overrides DC_APP_BASE_URL (requests still go to the test
	// server).
	baseURL string
	// trustedProxies is DC_APP_TRUSTED_PROXIES.
	trustedProxies string
}

type harness struct {
	t    testing.TB
	app  *App
	srv  *httptest.Server
	fake *cloudtest.Fake
	URL  string
	out  *syncBuffer
	logs *syncBuffer
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	fake := cloudtest.New(t)
	d := o.db
	if d == nil {
		d = dbtest.SQLite(t, migrations.FS)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	public := base
	if o.baseURL != "" {
		public = o.baseURL
	}
	pw := o.password
	switch pw {
	case "":
		pw = adminPass
	case "-":
		pw = ""
	}
	trusted := strings.Join(append([]string{fake.URL}, o.extraTrusted...), ",")
	cfg, err := config.Load(env.FromMap(map[string]string{
		"DC_APP_BASE_URL":           public,
		"DC_APP_DATA_DIR":           t.TempDir(),
		"DC_APP_TRUSTED_CLOUD_URLS": trusted,
		"DC_APP_TRUSTED_SITES":      o.trustedSites,
		"DC_APP_ADMIN_USERNAME":     adminUser,
		"DC_APP_ADMIN_PASSWORD":     pw,
		"DC_APP_TRUSTED_PROXIES":    o.trustedProxies,
	}))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, fake: fake, srv: srv, URL: base, out: &syncBuffer{}, logs: &syncBuffer{}}
	retry := o.retry
	if retry.Every == 0 {
		retry.Every = time.Hour // tests drive the retry themselves unless they ask
	}
	key := secret.NewKey()
	if o.key != nil {
		key = *o.key
	}
	app, err := New(context.Background(), Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(h.logs, nil)), DB: d, SecretKey: key,
		Out: h.out, Cloud: cloud.New(cloud.Options{Timeout: 10 * time.Second}), Retry: retry, PasswordCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	srv.Config.Handler = app.Server
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		app.Close()
	})
	return h
}

// client is a browser-like client: a cookie jar, no redirect following.
type client struct {
	t    testing.TB
	h    *harness
	hc   *http.Client
	csrf string
}

func (h *harness) newClient() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: h.t, h: h, hc: &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// signedIn returns a client signed in as the admin, with the session's
// CSRF token read from the page.
func (h *harness) signedIn() *client {
	h.t.Helper()
	c := h.newClient()
	resp := c.login(adminUser, adminPass)
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("sign in: %d %s", resp.StatusCode, readBody(resp))
	}
	c.loadCSRF()
	return c
}

func (c *client) loadCSRF() {
	c.t.Helper()
	doc := c.page("/space-sync")
	tok, ok := doc.Find(`meta[name="csrf-token"]`).Attr("content")
	if !ok || tok == "" {
		c.t.Fatal("no CSRF token on the page")
	}
	c.csrf = tok
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *client) get(path string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.h.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	return c.do(req)
}

// page GETs a page, requires 200, and parses it.
func (c *client) page(path string) *goquery.Document {
	c.t.Helper()
	resp := c.get(path)
	body := readBody(resp)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s = %d\n%s", path, resp.StatusCode, body)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	return doc
}

// login loads the sign-in form (for its pre-session token) and posts it.
func (c *client) login(user, pass string) *http.Response {
	c.t.Helper()
	doc := c.page("/login")
	tok, _ := doc.Find(`input[name="login_csrf"]`).Attr("value")
	return c.postForm("/login", url.Values{"username": {user}, "password": {pass}, "login_csrf": {tok}}, nil)
}

func (c *client) postForm(path string, v url.Values, hdr map[string]string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.h.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	return c.do(req)
}

// api sends an API request the way the page's script does: the session
// cookie, the CSRF header, Sec-Fetch-Site same-origin.
func (c *client) api(method, path, contentType string, body io.Reader) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.h.URL+path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", c.h.URL)
	return c.do(req)
}

// multipartBody builds a multipart/form-data body with a "file" part
// (name and declared type as given) and plain fields.
func multipartBody(t testing.TB, fileName, fileType string, file []byte, fields map[string]string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil || fileName != "" {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="file"; filename="`+fileName+`"`)
		if fileType != "" {
			hdr.Set("Content-Type", fileType)
		}
		part, err := w.CreatePart(hdr)
		if err != nil {
			t.Fatal(err)
		}
		part.Write(file)
	}
	w.Close()
	return w.FormDataContentType(), &buf
}

// basic sends an API request with HTTP Basic and no cookie.
func (h *harness) basic(user, pass, method, path, contentType string, body io.Reader) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.URL+path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// apiError decodes an error answer.
func apiError(t testing.TB, resp *http.Response) apperr.BodyError {
	t.Helper()
	body := readBody(resp)
	var e apperr.Body
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("HTTP %d, not an error body: %v\n%s", resp.StatusCode, err, body)
	}
	return e.Error
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	body := readBody(resp)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("HTTP %d: %v\n%s", resp.StatusCode, err, body)
	}
}

// rows counts synced spaces.
func (h *harness) rows() int {
	h.t.Helper()
	l, err := h.app.Store.List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return len(l)
}
