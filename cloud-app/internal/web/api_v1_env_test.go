package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/config"
	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/tokens"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// Helpers for the dc-app-facing API tests. Names start with v1 so they do
// not collide with other handlers' test helpers.

const v1BaseURL = "http://127.0.0.1:8081"

// v1Clock is the app's settable clock; it starts at the real time so that
// tokens minted "now" by any clock are valid.
type v1Clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *v1Clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *v1Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// v1Env is the real app (the real route table) over a fresh database.
type v1Env struct {
	// tb is the current (sub)test, for helpers' failures.
	tb    testing.TB
	app   *App
	db    *db.DB
	keys  *token.KeySet
	clock *v1Clock
	logs  *syncBuffer
	ctx   context.Context
	// ipSeq gives each request its own client address unless one is
	// asked for, so that the failure rate limit only bites where a test
	// means it to.
	ipSeq atomic.Int64
	// secrets are the bearer secrets the test used; none may reach the log.
	secretsMu sync.Mutex
	secrets   []string
}

func newV1Env(tb testing.TB, d *db.DB, extraEnv map[string]string) *v1Env {
	tb.Helper()
	keys, err := token.GenerateKeySet("k1")
	if err != nil {
		tb.Fatal(err)
	}
	env := map[string]string{
		"CLOUD_APP_BASE_URL":   v1BaseURL,
		"CLOUD_APP_DATA_DIR":   tb.TempDir(),
		"SPACESYNC_TOKEN_KEYS": keys.Encode(),
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		tb.Fatal(err)
	}
	e := &v1Env{tb: tb, db: d, keys: keys, clock: &v1Clock{t: time.Now().UTC()}, logs: &syncBuffer{}, ctx: context.Background()}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := New(ctx, Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DB: d, SecretKey: secret.NewKey(), TokenKeys: keys, Now: e.clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.app = app
	tb.Cleanup(func() {
		cancel()
		app.Close()
		e.checkLogs(tb)
	})
	return e
}

// checkLogs fails the test if a secret the test used reached the log.
func (e *v1Env) checkLogs(tb testing.TB) {
	logs := e.logs.String()
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	for _, s := range e.secrets {
		if strings.Contains(logs, s) {
			tb.Errorf("a secret reached the log")
		}
	}
}

// remember notes secrets that must not reach the log. Short strings (the
// malformed values of validation tests) are not secrets and would match
// anything.
func (e *v1Env) remember(secrets ...string) {
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	for _, s := range secrets {
		if len(s) >= 16 {
			e.secrets = append(e.secrets, s)
		}
	}
}

// v1Tenant installs a tenant through the store.
func (e *v1Env) tenant(clientKey string) *store.Tenant {
	e.tb.Helper()
	t, err := e.app.store.InstallTenant(e.ctx, store.Installation{
		ClientKey: clientKey, BaseURL: "https://" + clientKey + ".atlassian.net/wiki",
		SharedSecret: "a-shared-secret-that-is-long-enough-0123456789", ProductType: "confluence",
	})
	if err != nil {
		e.tb.Fatalf("InstallTenant: %v", err)
	}
	return t
}

func (e *v1Env) sync(t *store.Tenant, spaceKey string) store.Sync {
	e.tb.Helper()
	s, err := e.app.store.CreateSync(e.ctx, store.NewSync{
		TenantID: t.ID, SpaceID: "sp-" + spaceKey, SpaceKey: spaceKey, SpaceName: spaceKey + " space", Name: spaceKey + " sync",
		Permissions:  []store.Principal{{Type: store.PrincipalGroup, ID: "g-1", Name: "confluence-admins"}},
		SyncComments: true, SyncLabels: true, CreatedBy: "acc-admin",
	})
	if err != nil {
		e.tb.Fatalf("CreateSync: %v", err)
	}
	return s
}

// mint mints a token for the sync with the app's own minter at the app's
// clock, and stores it unless store is false.
func (e *v1Env) mint(t *store.Tenant, s store.Sync, stored bool) (string, store.TokenRecord) {
	e.tb.Helper()
	return e.mintWith(e.app.tokenMinter, t, s, stored)
}

func (e *v1Env) mintWith(m *tokens.Minter, t *store.Tenant, s store.Sync, stored bool) (string, store.TokenRecord) {
	e.tb.Helper()
	got, err := m.Mint(tokens.Request{Tenant: t, Sync: s, Message: "Please import", Channel: store.ChannelDownload, IssuedBy: "acc-admin"})
	if err != nil {
		e.tb.Fatalf("Mint: %v", err)
	}
	e.remember(got.Token)
	if stored {
		if err := e.app.store.IssueToken(e.ctx, got.Record, nil); err != nil {
			e.tb.Fatalf("IssueToken: %v", err)
		}
	}
	return got.Token, got.Record
}

// v1Response is a recorded response.
type v1Response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// ErrCode is the error code of an error response, "" otherwise.
func (r v1Response) ErrCode() apperr.Code {
	var b apperr.Body
	if json.Unmarshal(r.Body, &b) != nil {
		return ""
	}
	return b.Error.Code
}

func (r v1Response) String() string { return fmt.Sprintf("%d %s", r.Code, bytes.TrimSpace(r.Body)) }

// v1Request describes one call.
type v1Request struct {
	Method string
	Path   string
	// Body is marshalled as JSON unless it is a string or []byte (sent as
	// is).
	Body        any
	ContentType string // default application/json when there is a body
	Header      map[string]string
	// RemoteAddr is the TCP peer; default a fresh address per request.
	RemoteAddr string
}

// do serves r through the app's real route table. It is safe to call from
// many goroutines at once. Every dc-app-facing response must be no-store.
func (e *v1Env) do(r v1Request) v1Response {
	var body []byte
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			panic(err)
		}
	}
	req := httptest.NewRequest(r.Method, r.Path, bytes.NewReader(body))
	if r.Body != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	req.RemoteAddr = r.RemoteAddr
	if req.RemoteAddr == "" {
		n := e.ipSeq.Add(1)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", n>>16&255, n>>8&255, n&255)
	}
	rec := httptest.NewRecorder()
	e.app.Server.ServeHTTP(rec, req)
	res := v1Response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	if strings.HasPrefix(r.Path, "/api/v1/") && res.Header.Get("Cache-Control") != "no-store" {
		e.tb.Errorf("%s %s: Cache-Control = %q; want no-store", r.Method, r.Path, res.Header.Get("Cache-Control"))
	}
	return res
}

func (e *v1Env) preview(tok string) v1Response {
	return e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: tok}})
}

// redemption is a well-formed redemption of tok (whose record is rec) by
// instance with linkSecret.
func v1Redemption(tok string, t *store.Tenant, s store.Sync, instance, linkSecret string) protocol.RedemptionRequest {
	return protocol.RedemptionRequest{
		Token:      tok,
		Instance:   protocol.Instance{ID: instance, Name: "DC " + instance, BaseURL: "https://confluence.dc.example"},
		Name:       "Imported " + s.SpaceKey,
		LinkSecret: linkSecret,
		Expect:     protocol.Expect{SiteBaseURL: t.BaseURL, SpaceID: s.SpaceID, SyncID: s.ID},
	}
}

func (e *v1Env) redeem(r protocol.RedemptionRequest) v1Response {
	e.remember(r.LinkSecret)
	return e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: r})
}

func (e *v1Env) linkSelf(method, linkSecret string) v1Response {
	return e.do(v1Request{Method: method, Path: protocol.PathLinkSelf, Header: map[string]string{"Authorization": "Bearer " + linkSecret}})
}

// newLinkSecret is a fresh link secret as dc-app makes one.
func (e *v1Env) newLinkSecret() string {
	s := token.NewRedemptionSecret() // the same form: 32 random bytes, base64url
	e.remember(s)
	return s
}

func v1Link(tb testing.TB, r v1Response) protocol.Link {
	tb.Helper()
	var body protocol.RedemptionResponse
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Link.ID == "" {
		tb.Fatalf("not a link response: %s", r)
	}
	return body.Link
}

func v1Preview(tb testing.TB, r v1Response) protocol.Preview {
	tb.Helper()
	var p protocol.Preview
	if err := json.Unmarshal(r.Body, &p); err != nil || p.TokenID == "" {
		tb.Fatalf("not a preview: %s", r)
	}
	return p
}

func (e *v1Env) count(query string, args ...any) int {
	e.tb.Helper()
	var n int64
	if err := e.db.Raw(query, args...).Scan(&n).Error; err != nil {
		e.tb.Fatalf("%s: %v", query, err)
	}
	return int(n)
}
