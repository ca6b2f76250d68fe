package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/mail"
	"spacesync.io/devstack/confluencesim"
	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Helpers for the Space Sync page and iframe API tests. Names start with ui
// so they do not collide with other handlers' test helpers.
//
// A uiEnv is the real app, served on 127.0.0.1 with its real route table,
// one Confluence Cloud simulator per tenant on localhost (cross-site, as in
// the dev stack), each of which installed the app with a signed install,
// and a SendGrid simulator the app sends through (MAIL_MODE=sendgrid).

const uiSendGridKey = "SG.ui-test-key-0123456789abcdefghijklmnopqrstuvwxyz"

// uiRSAKey signs every simulator's installs: sharing it lets one
// CLOUD_APP_INSTALL_KEYS_URL serve the kid of every simulator.
var uiRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// uiLogs is a log sink safe for concurrent writes.
type uiLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *uiLogs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *uiLogs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// uiSite is one simulated Confluence Cloud site (one tenant).
type uiSite struct {
	sim *confluencesim.Sim
	// URL is the simulator's origin, http://localhost:PORT.
	URL string
}

// user returns the account id of a seed user by display name.
func (s *uiSite) user(tb testing.TB, name string) string {
	tb.Helper()
	for _, u := range s.sim.Seed().Users {
		if u.DisplayName == name {
			return u.AccountID
		}
	}
	tb.Fatalf("no seed user %q", name)
	return ""
}

// token returns a context token (AP.context.getToken) for an account;
// "" is anonymous.
func (s *uiSite) token(tb testing.TB, accountID string) string {
	tb.Helper()
	t, err := s.sim.ContextToken(accountID)
	if err != nil {
		tb.Fatalf("ContextToken: %v", err)
	}
	return t
}

// uiOptions configures newUIEnv.
type uiOptions struct {
	// Sites is how many simulated sites (tenants); default 1.
	Sites int
	// Seed is the first site's content; nil means the default seed.
	Seed *confluencesim.Seed
	// MailMode is sendgrid (default) or outbox.
	MailMode string
	// MailWorker, when not nil, tunes the app's mail worker.
	MailWorker func(*mail.Worker)
}

type uiEnv struct {
	tb     testing.TB
	app    *App
	appURL string
	keys   *token.KeySet
	sites  []*uiSite
	sg     *sendgridsim.Sim
	logs   *uiLogs
	ctx    context.Context
}

// serveOn serves h on a new 127.0.0.1 listener and returns its port.
func uiListen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

func newUIEnv(tb testing.TB, d *db.DB, o uiOptions) *uiEnv {
	tb.Helper()
	if o.Sites <= 0 {
		o.Sites = 1
	}
	if o.MailMode == "" {
		o.MailMode = config.MailSendGrid
	}
	e := &uiEnv{tb: tb, logs: &uiLogs{}, ctx: context.Background()}
	appLn := uiListen(tb)
	e.appURL = "http://" + appLn.Addr().String()

	e.sg = sendgridsim.New(sendgridsim.Config{APIKey: uiSendGridKey})
	sgSrv := httptest.NewServer(e.sg.Handler())
	tb.Cleanup(sgSrv.Close)

	for i := range o.Sites {
		ln := uiListen(tb)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		seed := o.Seed
		if i > 0 {
			seed = nil
		}
		sim, err := confluencesim.New(confluencesim.Config{
			PublicURL:        "http://localhost:" + port,
			AppDescriptorURL: e.appURL + "/atlassian-connect.json",
			Seed:             seed,
			RSAKey:           uiRSAKey(),
		})
		if err != nil {
			tb.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(sim.Handler())
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		tb.Cleanup(srv.Close)
		e.sites = append(e.sites, &uiSite{sim: sim, URL: "http://localhost:" + port})
	}

	keys, err := token.GenerateKeySet("k1")
	if err != nil {
		tb.Fatal(err)
	}
	e.keys = keys
	env := map[string]string{
		"CLOUD_APP_BASE_URL":         e.appURL,
		"CLOUD_APP_DATA_DIR":         tb.TempDir(),
		"SPACESYNC_TOKEN_KEYS":       keys.Encode(),
		"CLOUD_APP_INSTALL_KEYS_URL": e.sites[0].sim.InstallKeysURL(),
		"CLOUD_APP_PRODUCT_HOSTS":    "localhost",
		"MAIL_MODE":                  o.MailMode,
	}
	if o.MailMode == config.MailSendGrid {
		env["SENDGRID_API_KEY"] = uiSendGridKey
		env["SENDGRID_API_URL"] = sgSrv.URL
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := New(ctx, Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		DB: d, SecretKey: secret.NewKey(), TokenKeys: keys, Now: time.Now,
		TuneMailWorker: o.MailWorker,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.app = app
	appSrv := httptest.NewUnstartedServer(app.Server)
	appSrv.Listener.Close()
	appSrv.Listener = appLn
	appSrv.Start()
	tb.Cleanup(func() {
		appSrv.Close()
		cancel()
		app.Close()
	})
	for _, s := range e.sites {
		ictx, icancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.sim.Install(ictx)
		icancel()
		if err != nil {
			tb.Fatalf("install into %s: %v", s.URL, err)
		}
	}
	return e
}

// uiResp is a recorded response.
type uiResp struct {
	Code   int
	Header http.Header
	Body   []byte
}

// ErrCode is the error code of an error response, "" otherwise.
func (r uiResp) ErrCode() apperr.Code {
	var b apperr.Body
	if json.Unmarshal(r.Body, &b) != nil {
		return ""
	}
	return b.Error.Code
}

// Fields are the field errors of a validation_failed response.
func (r uiResp) Fields() map[string]string {
	var b apperr.Body
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Fields
}

func (r uiResp) String() string {
	body := string(bytes.TrimSpace(r.Body))
	if len(body) > 400 {
		body = body[:400] + "…"
	}
	return fmt.Sprintf("%d %s", r.Code, body)
}

// decode unmarshals the body into v.
func (r uiResp) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r, err)
	}
}

// call sends a request through the app's real route table. auth is the
// whole Authorization header value ("" for none); body is marshalled as
// JSON unless it is a string.
func (e *uiEnv) call(method, target, auth string, body any) uiResp {
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			panic(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, target, rd)
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	e.app.Server.ServeHTTP(w, req)
	return uiResp{Code: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// as calls the iframe API as a context token.
func (e *uiEnv) as(token, method, target string, body any) uiResp {
	return e.call(method, target, "JWT "+token, body)
}

// createSync creates a sync through the API as token and returns it.
func (e *uiEnv) createSync(tb testing.TB, token, spaceKey, name string, perms []uiPrincipal) uiSyncJSON {
	tb.Helper()
	if perms == nil {
		perms = []uiPrincipal{}
	}
	r := e.as(token, "POST", "/api/ui/spaces/"+spaceKey+"/syncs", map[string]any{
		"name": name, "permissions": perms, "syncComments": true, "syncLabels": false,
	})
	if r.Code != http.StatusCreated {
		tb.Fatalf("create sync on %s: %s", spaceKey, r)
	}
	var out struct{ Sync uiSyncJSON }
	r.decode(tb, &out)
	return out.Sync
}

// checkNoSecrets fails if a secret reached the log.
func (e *uiEnv) checkNoSecrets(tb testing.TB, secrets ...string) {
	tb.Helper()
	logs := e.logs.String()
	for _, s := range secrets {
		if len(s) >= 16 && strings.Contains(logs, s) {
			tb.Errorf("a secret reached the log")
		}
	}
}
