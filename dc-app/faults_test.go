package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/dctest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/secret"
)

const faultPassword = "fault test password"

// dcFaultEnv is dc-app started by run on a throwaway Postgres cluster of
// its own (so the test can stop and start it), trusting a cloudtest fake
// reached through a proxy whose hook can stop the database mid-request.
type dcFaultEnv struct {
	t       *testing.T
	cluster *dbtest.Cluster
	app     started
	vars    map[string]string
	fake    *cloudtest.Fake
	proxy   *dctest.HoldingProxy
	db      *sql.DB

	mu       sync.Mutex
	stopOn   string // stop the database when a request for this path passes the proxy
	stopErrs []error
}

func newDCFaultEnv(t *testing.T) *dcFaultEnv {
	t.Helper()
	c, err := dbtest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	e := &dcFaultEnv{t: t, cluster: c, fake: cloudtest.New(t)}
	e.proxy = &dctest.HoldingProxy{Held: make(chan int, 1), Before: func(path string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.stopOn == path {
			e.stopOn = ""
			if err := e.cluster.Stop(); err != nil {
				e.stopErrs = append(e.stopErrs, err)
			}
		}
	}}
	ln := dctest.ServeLoopback(t, e.proxy)
	proxyURL := "http://" + ln.Addr().String()
	e.proxy.Upstream = e.fake.ServeAs(proxyURL)
	e.vars = map[string]string{
		"DC_APP_DATABASE_URL":       c.URL("postgres"),
		"DC_APP_DATA_DIR":           t.TempDir(),
		"DC_APP_SECRET_KEY":         secret.NewKey().Encode(),
		"DC_APP_TRUSTED_CLOUD_URLS": proxyURL,
		"DC_APP_ADMIN_PASSWORD":     faultPassword,
	}
	e.app = start(t, e.vars)
	if e.db, err = sql.Open("pgx", c.URL("postgres")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	return e
}

// stopDatabaseOn makes the proxy stop Postgres when dc-app's next call to
// path passes it, before the call reaches Cloud.
func (e *dcFaultEnv) stopDatabaseOn(path string) {
	e.mu.Lock()
	e.stopOn = path
	e.mu.Unlock()
}

func (e *dcFaultEnv) checkStops() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopOn != "" {
		e.t.Fatalf("dc-app never called %s", e.stopOn)
	}
	for _, err := range e.stopErrs {
		e.t.Fatal(err)
	}
}

type dcResp struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r dcResp) String() string {
	return http.StatusText(r.Code) + " " + string(bytes.TrimSpace(r.Body))
}

// importToken posts a JSON import with HTTP Basic.
func (e *dcFaultEnv) importToken(tok, name string) dcResp {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"token": tok, "name": name})
	req, _ := http.NewRequest("POST", e.app.url+"/api/v1/synced-spaces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", faultPassword)
	return e.do(http.DefaultClient, req)
}

func (e *dcFaultEnv) do(c *http.Client, req *http.Request) dcResp {
	e.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return dcResp{Code: resp.StatusCode, Header: resp.Header, Body: b}
}

func (e *dcFaultEnv) count(query string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(query).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *dcFaultEnv) restartDatabase() {
	e.t.Helper()
	if err := e.cluster.Start(); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for status(e.t, e.app.url+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			e.t.Fatal("/readyz did not turn 200 after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantDCUnavailable(t *testing.T, what string, r dcResp) {
	t.Helper()
	var b apperr.Body
	_ = json.Unmarshal(r.Body, &b)
	if r.Code != http.StatusServiceUnavailable || b.Error.Code != apperr.Unavailable || b.Error.Message == "" || r.Header.Get("Retry-After") == "" {
		t.Errorf("%s with the database down: %s (Retry-After %q), want 503 unavailable with a message and Retry-After", what, r, r.Header.Get("Retry-After"))
	}
}

var loginCSRF = regexp.MustCompile(`name="login_csrf" value="([^"]+)"`)

// TestFaults_DatabaseGoesAway stops dc-app's Postgres under it and starts
// it again (issue 8): /readyz turns 503 and back to 200 without a
// restart; an import, the list and a sign-in made in between get 503
// unavailable (never 500, and a sign-in never "wrong password"), call
// nothing on Cloud and store nothing; made again afterwards they succeed.
func TestFaults_DatabaseGoesAway(t *testing.T) {
	e := newDCFaultEnv(t)
	tok := e.fake.Mint(t, cloudtest.MintOptions{})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := e.do(browser, mustRequest(t, "GET", e.app.url+"/login", nil))
	m := loginCSRF.FindSubmatch(page.Body)
	if page.Code != http.StatusOK || m == nil {
		t.Fatalf("sign-in page: %d, csrf field found %v", page.Code, m != nil)
	}
	signIn := func() dcResp {
		form := url.Values{"username": {"admin"}, "password": {faultPassword}, "login_csrf": {string(m[1])}}
		req := mustRequest(t, "POST", e.app.url+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		return e.do(browser, req)
	}

	if err := e.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := status(t, e.app.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database down = %d, want 503", got)
	}
	wantDCUnavailable(t, "import", e.importToken(tok, "During"))
	list := mustRequest(t, "GET", e.app.url+"/api/v1/synced-spaces", nil)
	list.SetBasicAuth("admin", faultPassword)
	wantDCUnavailable(t, "list", e.do(http.DefaultClient, list))
	// More attempts than the sign-in throttle allows (10 per user, 20 per
	// address): an outage is not a wrong password and must not lock the
	// admin out once the database is back.
	for i := range 21 {
		if r := signIn(); r.Code != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "temporarily unavailable") || strings.Contains(string(r.Body), "Wrong username or password") {
			t.Fatalf("sign-in %d with the database down: %d, want 503 saying the service is temporarily unavailable\n%s", i+1, r.Code, r.Body)
		}
	}
	if n := e.fake.TotalCalls(); n != 0 {
		t.Errorf("calls to Cloud during the outage: %d, want 0", n)
	}

	e.restartDatabase()
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces`); n != 0 {
		t.Errorf("synced spaces after the outage: %d, want 0", n)
	}
	if r := signIn(); r.Code != http.StatusSeeOther || r.Header.Get("Location") != "/space-sync" {
		t.Errorf("sign-in after the outage: %s, want 303 to /space-sync", r)
	}
	r := e.importToken(tok, "During")
	if r.Code != http.StatusCreated {
		t.Fatalf("import after the outage: %s", r)
	}
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces WHERE status = 'LINKED'`); n != 1 {
		t.Errorf("linked synced spaces: %d, want 1", n)
	}
	if n := len(e.fake.ActiveLinks()); n != 1 {
		t.Errorf("Cloud links: %d, want 1", n)
	}
}

// TestFaults_DatabaseGoesAwayMidImport stops Postgres while an import
// waits for Cloud's preview, so the pending row cannot be written: the
// import answers 503 unavailable, Cloud's token is not consumed (no
// redemption is sent) and nothing is stored; the same import retried
// after the database is back succeeds.
func TestFaults_DatabaseGoesAwayMidImport(t *testing.T) {
	e := newDCFaultEnv(t)
	tok := e.fake.Mint(t, cloudtest.MintOptions{})
	e.stopDatabaseOn(protocol.PathPreviews)
	wantDCUnavailable(t, "import cut off after the preview", e.importToken(tok, "Mid"))
	e.checkStops()
	if n := e.fake.Calls(protocol.PathRedemptions); n != 0 {
		t.Errorf("redemptions sent without a pending row: %d, want 0", n)
	}
	e.restartDatabase()
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces`); n != 0 {
		t.Errorf("synced spaces after the cut-off import: %d, want 0", n)
	}
	if r := e.importToken(tok, "Mid"); r.Code != http.StatusCreated {
		t.Fatalf("import retried after the outage: %s", r)
	}
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces WHERE status = 'LINKED'`); n != 1 {
		t.Errorf("linked synced spaces: %d, want 1", n)
	}
	if n := len(e.fake.ActiveLinks()); n != 1 {
		t.Errorf("Cloud links: %d, want 1", n)
	}
}

// TestFaults_DatabaseGoesAwayMidRedemption stops Postgres after dc-app
// wrote its pending row and sent the redemption, so Cloud creates the link
// but dc-app cannot record it. The import must answer 202 pending (the
// import completes by itself), not 503 "try again" (which would only earn
// already_imported); the row stays PENDING; and the start-up retry of the
// next run records the same link: one link on each side.
func TestFaults_DatabaseGoesAwayMidRedemption(t *testing.T) {
	e := newDCFaultEnv(t)
	tok := e.fake.Mint(t, cloudtest.MintOptions{})
	e.stopDatabaseOn(protocol.PathRedemptions)
	r := e.importToken(tok, "Mid")
	e.checkStops()
	var body struct {
		SyncedSpace struct{ Status string }
		Error       *apperr.BodyError
	}
	_ = json.Unmarshal(r.Body, &body)
	if r.Code != http.StatusAccepted || body.Error == nil || body.Error.Code != apperr.Pending || body.SyncedSpace.Status != "PENDING" {
		t.Errorf("import whose link could not be recorded: %s, want 202 pending", r)
	}
	e.restartDatabase()
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces WHERE status = 'PENDING'`); n != 1 {
		t.Fatalf("pending synced spaces: %d, want 1", n)
	}
	if r := e.importToken(tok, "Mid"); r.Code != http.StatusConflict {
		t.Errorf("the same import again: %s, want 409 already_imported", r)
	}
	// The retry: the next run's start-up pass, once the first attempt's
	// lease (the cloud timeout plus 30s) has run out, which the test
	// stands for instead of waiting it.
	if err := e.app.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`UPDATE synced_spaces SET lease_until = NULL, next_attempt_at = NULL WHERE status = 'PENDING'`); err != nil {
		t.Fatal(err)
	}
	e.app = start(t, e.vars)
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT COUNT(*) FROM synced_spaces WHERE status = 'LINKED'`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the start-up retry did not link the pending import")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.count(`SELECT COUNT(*) FROM synced_spaces`); n != 1 {
		t.Errorf("synced spaces: %d, want 1", n)
	}
	if links := e.fake.Links(); len(links) != 1 || !links[0].Active || e.fake.Redeemed() != 1 {
		t.Errorf("Cloud links %+v (created %d): want exactly one", links, e.fake.Redeemed())
	}
}

func mustRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
