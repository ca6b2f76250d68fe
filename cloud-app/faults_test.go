package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/secret"
)

// faultEnv is cloud-app started by run on a throwaway Postgres cluster of
// its own (so the test can stop and start it), installed into a Confluence
// Cloud simulator with a signed install.
type faultEnv struct {
	t       *testing.T
	cluster *dbtest.Cluster
	app     started
	site    *confluencesim.Sim
	admin   string // a context token of a site admin (Ada)
	db      *sql.DB
}

// faultOptions configure newFaultEnv.
type faultOptions struct {
	// PublicURL, when set, is CLOUD_APP_BASE_URL (as behind a proxy);
	// default the listening address. Before cloud-app starts, Listening
	// receives the address it will listen on.
	PublicURL string
	Listening func(appURL string)
}

func newFaultEnv(t *testing.T, o faultOptions) *faultEnv {
	t.Helper()
	c, err := dbtest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	e := &faultEnv{t: t, cluster: c}

	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appAddr := appLn.Addr().String()
	appLn.Close()
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, simPort, _ := net.SplitHostPort(simLn.Addr().String())
	e.site, err = confluencesim.New(confluencesim.Config{
		PublicURL:        "http://localhost:" + simPort,
		AppDescriptorURL: "http://" + appAddr + "/atlassian-connect.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewUnstartedServer(e.site.Handler())
	simSrv.Listener.Close()
	simSrv.Listener = simLn
	simSrv.Start()
	t.Cleanup(simSrv.Close)

	base := o.PublicURL
	if base == "" {
		base = "http://" + appAddr
	}
	if o.Listening != nil {
		o.Listening("http://" + appAddr)
	}
	e.app = start(t, map[string]string{
		"CLOUD_APP_ADDR":             appAddr,
		"CLOUD_APP_BASE_URL":         base,
		"CLOUD_APP_DATABASE_URL":     c.URL("postgres"),
		"CLOUD_APP_DATA_DIR":         t.TempDir(),
		"CLOUD_APP_SECRET_KEY":       secret.NewKey().Encode(),
		"SPACESYNC_TOKEN_KEYS":       "k1:" + secret.NewKey().Encode(),
		"CLOUD_APP_INSTALL_KEYS_URL": e.site.InstallKeysURL(),
		"CLOUD_APP_PRODUCT_HOSTS":    "localhost",
		"MAIL_MODE":                  "outbox",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.site.Install(ctx); err != nil {
		t.Fatalf("install: %v", err)
	}
	var ada string
	for _, u := range e.site.Seed().Users {
		if u.DisplayName == "Ada Admin" {
			ada = u.AccountID
		}
	}
	if e.admin, err = e.site.ContextToken(ada); err != nil {
		t.Fatal(err)
	}
	if e.db, err = sql.Open("pgx", c.URL("postgres")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	return e
}

// faultResp is a response read in full.
type faultResp struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r faultResp) String() string {
	return http.StatusText(r.Code) + " " + string(bytes.TrimSpace(r.Body))
}

// call sends a request to the running app; auth is the Authorization
// header ("" for none) and body is marshalled as JSON unless nil.
func (e *faultEnv) call(method, path, auth string, body any) faultResp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.app.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return faultResp{Code: resp.StatusCode, Header: resp.Header, Body: b}
}

// count runs a COUNT(*) query on cloud-app's database.
func (e *faultEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitReady polls /readyz until it answers 200.
func (e *faultEnv) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for status(e.t, e.app.url+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			e.t.Fatal("/readyz did not turn 200 after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantUnavailable fails unless r is a 503 with the code unavailable, a
// Retry-After and a message.
func wantUnavailable(t *testing.T, what string, r faultResp) {
	t.Helper()
	var b apperr.Body
	_ = json.Unmarshal(r.Body, &b)
	if r.Code != http.StatusServiceUnavailable || b.Error.Code != apperr.Unavailable || b.Error.Message == "" || r.Header.Get("Retry-After") == "" {
		t.Errorf("%s with the database down: %s (Retry-After %q), want 503 unavailable with a message and Retry-After", what, r, r.Header.Get("Retry-After"))
	}
}

func newLinkSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TestFaults_DatabaseGoesAway stops cloud-app's Postgres under it and
// starts it again (issue 8): /readyz turns 503 and back to 200 without a
// restart; a Create New Sync, a token download, a preview, a redemption
// and an installed callback made in between get 503 unavailable (never
// 500) and leave nothing behind; the same requests made again afterwards
// succeed.
func TestFaults_DatabaseGoesAway(t *testing.T) {
	e := newFaultEnv(t, faultOptions{})
	jwt := "JWT " + e.admin

	// Before: a sync and a token for it, previewed as dc-app would.
	r := e.call("POST", "/api/ui/spaces/DOCS/syncs", jwt, map[string]any{"name": "Before", "permissions": []any{}, "syncComments": true})
	if r.Code != http.StatusCreated {
		t.Fatalf("create sync: %s", r)
	}
	var created struct{ Sync struct{ ID, Status string } }
	_ = json.Unmarshal(r.Body, &created)
	syncID := created.Sync.ID
	r = e.call("POST", "/api/ui/syncs/"+syncID+"/token-downloads", jwt, map[string]string{"message": "hi"})
	if r.Code != http.StatusOK {
		t.Fatalf("download token: %s", r)
	}
	tok := strings.TrimSpace(string(r.Body))
	r = e.call("POST", protocol.PathPreviews, "", protocol.PreviewRequest{Token: tok})
	var p protocol.Preview
	if r.Code != http.StatusOK || json.Unmarshal(r.Body, &p) != nil || p.State != protocol.StateUsable {
		t.Fatalf("preview: %s", r)
	}
	redemption := protocol.RedemptionRequest{
		Token: tok, Name: "DC copy", LinkSecret: newLinkSecret(),
		Instance: protocol.Instance{ID: "dc-instance-1", Name: "DC", BaseURL: "https://dc.example.com"},
		Expect:   protocol.Expect{SiteBaseURL: p.Site.BaseURL, SpaceID: p.Space.ID, SyncID: p.SyncID},
	}
	tokensBefore := e.count(`SELECT COUNT(*) FROM tokens`)

	if err := e.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := status(t, e.app.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database down = %d, want 503", got)
	}
	wantUnavailable(t, "create sync", e.call("POST", "/api/ui/spaces/DOCS/syncs", jwt, map[string]any{"name": "During", "permissions": []any{}}))
	wantUnavailable(t, "list syncs", e.call("GET", "/api/ui/spaces/DOCS/syncs", jwt, nil))
	wantUnavailable(t, "download token", e.call("POST", "/api/ui/syncs/"+syncID+"/token-downloads", jwt, map[string]string{"message": "during"}))
	wantUnavailable(t, "preview", e.call("POST", protocol.PathPreviews, "", protocol.PreviewRequest{Token: tok}))
	wantUnavailable(t, "redemption", e.call("POST", protocol.PathRedemptions, "", redemption))
	// Confluence retries a lifecycle callback that is not answered 2xx; it
	// must be told 503, not 500.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var le *confluencesim.LifecycleError
	if err := e.site.Install(ctx); !errors.As(err, &le) || le.Status != http.StatusServiceUnavailable {
		t.Errorf("installed callback (an upgrade) with the database down: %v, want the app to answer 503", err)
	}

	if err := e.cluster.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitReady()

	// Nothing was written in between.
	if n := e.count(`SELECT COUNT(*) FROM syncs WHERE name = 'During'`); n != 0 {
		t.Errorf("syncs created during the outage: %d, want 0", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM tokens`); n != tokensBefore {
		t.Errorf("tokens: %d, want %d (none issued during the outage)", n, tokensBefore)
	}
	if n := e.count(`SELECT COUNT(*) FROM links`); n != 0 {
		t.Errorf("links after a failed redemption: %d, want 0", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM syncs WHERE id = $1 AND status = 'NOT_SYNCED_YET'`, syncID); n != 1 {
		t.Errorf("the sync changed status during the outage")
	}

	// The same requests again succeed, each exactly once.
	if err := e.site.Install(ctx); err != nil {
		t.Errorf("installed callback after the outage: %v", err)
	}
	if n := e.count(`SELECT COUNT(*) FROM tenants`); n != 1 {
		t.Errorf("tenants: %d, want 1", n)
	}
	if r := e.call("POST", "/api/ui/spaces/DOCS/syncs", jwt, map[string]any{"name": "During", "permissions": []any{}}); r.Code != http.StatusCreated {
		t.Errorf("create sync after the outage: %s", r)
	}
	r = e.call("POST", protocol.PathRedemptions, "", redemption)
	if r.Code != http.StatusCreated {
		t.Fatalf("redemption after the outage: %s", r)
	}
	if n := e.count(`SELECT COUNT(*) FROM syncs WHERE name = 'During'`); n != 1 {
		t.Errorf("syncs named During: %d, want 1", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = $1`, syncID); n != 1 {
		t.Errorf("links: %d, want 1", n)
	}
}

// TestFaults_DatabaseGoesAwayMidRedemption stops Postgres while a
// redemption's transaction is open: it has moved the sync to SYNCED and
// waits to mark the token used (another session holds the token's row).
// The redemption must answer 503 unavailable, and after the restart the
// sync, the token and the links must be as before it; the retried
// redemption then succeeds.
func TestFaults_DatabaseGoesAwayMidRedemption(t *testing.T) {
	e := newFaultEnv(t, faultOptions{})
	jwt := "JWT " + e.admin
	r := e.call("POST", "/api/ui/spaces/ENG/syncs", jwt, map[string]any{"name": "Mid", "permissions": []any{}})
	if r.Code != http.StatusCreated {
		t.Fatalf("create sync: %s", r)
	}
	var created struct{ Sync struct{ ID string } }
	_ = json.Unmarshal(r.Body, &created)
	syncID := created.Sync.ID
	r = e.call("POST", "/api/ui/syncs/"+syncID+"/token-downloads", jwt, map[string]string{})
	if r.Code != http.StatusOK {
		t.Fatalf("download token: %s", r)
	}
	tok := strings.TrimSpace(string(r.Body))
	r = e.call("POST", protocol.PathPreviews, "", protocol.PreviewRequest{Token: tok})
	var p protocol.Preview
	if r.Code != http.StatusOK || json.Unmarshal(r.Body, &p) != nil {
		t.Fatalf("preview: %s", r)
	}
	redemption := protocol.RedemptionRequest{
		Token: tok, Name: "DC copy", LinkSecret: newLinkSecret(),
		Instance: protocol.Instance{ID: "dc-instance-1", Name: "DC", BaseURL: "https://dc.example.com"},
		Expect:   protocol.Expect{SiteBaseURL: p.Site.BaseURL, SpaceID: p.Space.ID, SyncID: p.SyncID},
	}

	// Hold the token's row so the redemption's transaction stops there.
	ctx := context.Background()
	lock, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`SELECT 1 FROM tokens WHERE jti = $1 FOR UPDATE`, p.TokenID); err != nil {
		t.Fatal(err)
	}
	done := make(chan faultResp, 1)
	go func() { done <- e.call("POST", protocol.PathRedemptions, "", redemption) }()
	deadline := time.Now().Add(15 * time.Second)
	for e.count(`SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE tokens SET used_at%'`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the redemption never waited on the token's row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sync update is done inside the open transaction.
	if err := e.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		wantUnavailable(t, "redemption cut off mid-transaction", r)
	case <-time.After(15 * time.Second):
		t.Fatal("the redemption did not answer after the database stopped")
	}
	if err := e.cluster.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitReady()
	if n := e.count(`SELECT COUNT(*) FROM syncs WHERE id = $1 AND status = 'NOT_SYNCED_YET'`, syncID); n != 1 {
		t.Errorf("the sync is no longer NOT_SYNCED_YET after the cut-off redemption")
	}
	if n := e.count(`SELECT COUNT(*) FROM tokens WHERE jti = $1 AND used_at IS NULL`, p.TokenID); n != 1 {
		t.Errorf("the token is marked used after the cut-off redemption")
	}
	if n := e.count(`SELECT COUNT(*) FROM links`); n != 0 {
		t.Errorf("links after the cut-off redemption: %d, want 0", n)
	}
	r = e.call("POST", protocol.PathRedemptions, "", redemption)
	if r.Code != http.StatusCreated {
		t.Fatalf("redemption retried after the outage: %s", r)
	}
	if n := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = $1`, syncID); n != 1 {
		t.Errorf("links: %d, want 1", n)
	}
}
