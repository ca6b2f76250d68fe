package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 8, "dc-app is killed between its pending row and activation",
// against the real cloud-app: cloud-app runs in-process (run, on its own
// Postgres cluster, installed into the Confluence Cloud simulator) behind a
// proxy that is its public base URL; the real dc-app binary, configured
// only by the contract's variables, imports a token downloaded from
// cloud-app's iframe API. The proxy lets the redemption reach cloud-app
// and holds back the answer; dc-app is SIGKILLed while its row is PENDING
// and cloud-app already holds the link; the binary is started again on the
// same data directory and its start-up retry replays the redemption.
// Exactly one link must exist on each side, and they must be the same.
// (dc-app/kill_test.go is the same scenario against dc-app's strict fake.)
func TestKill_DCAppBetweenPendingAndActivation(t *testing.T) {
	bin := buildDCApp(t)
	hold := &holdingProxy{held: make(chan int, 1)}
	proxyLn := serveLoopback(t, hold)
	proxyURL := "http://" + proxyLn.Addr().String()
	e := newFaultEnv(t, faultOptions{PublicURL: proxyURL, Listening: func(u string) { hold.upstream = u }})
	jwt := "JWT " + e.admin
	r := e.call("POST", "/api/ui/spaces/DOCS/syncs", jwt, map[string]any{"name": "Killed", "permissions": []any{}})
	if r.Code != http.StatusCreated {
		t.Fatalf("create sync: %s", r)
	}
	var created struct{ Sync struct{ ID string } }
	_ = json.Unmarshal(r.Body, &created)
	syncID := created.Sync.ID
	r = e.call("POST", "/api/ui/syncs/"+syncID+"/token-downloads", jwt, map[string]string{"message": "for the kill test"})
	if r.Code != http.StatusOK {
		t.Fatalf("download token: %s", r)
	}
	tok := strings.TrimSpace(string(r.Body))

	dataDir := filepath.Join(t.TempDir(), "dc-data")
	const password = "kill test password"
	vars := map[string]string{
		"DC_APP_DATA_DIR":           dataDir,
		"DC_APP_TRUSTED_CLOUD_URLS": proxyURL,
		"DC_APP_ADMIN_PASSWORD":     password,
	}
	hold.holdRedemptions.Store(true)
	first := startDCBinary(t, bin, vars)
	importDone := make(chan error, 1)
	go func() {
		body, _ := json.Marshal(map[string]string{"token": tok, "name": "Killed import"})
		req, _ := http.NewRequest("POST", first.url+"/api/v1/synced-spaces", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = errors.New("the import answered " + resp.Status + ": " + string(b))
		}
		importDone <- err
	}()
	select {
	case st := <-hold.held:
		if st != http.StatusCreated {
			t.Fatalf("cloud-app answered the redemption %d, want 201", st)
		}
	case err := <-importDone:
		t.Fatalf("the import ended before cloud-app answered: %v\n%s", err, first.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("the redemption never reached cloud-app\n%s", first.logs.String())
	}
	dbPath := filepath.Join(dataDir, "dc-app.db")
	if rows := dcRows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" || rows[0].LinkID != "" {
		t.Fatalf("before the kill: dc-app rows %+v, want one PENDING row without a link", rows)
	}
	if n := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = $1 AND status = 'active'`, syncID); n != 1 {
		t.Fatalf("before the kill: cloud-app holds %d active links, want 1", n)
	}

	first.kill(t)
	select {
	case err := <-importDone:
		t.Logf("the import request ended with the process: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the import request outlived the killed process")
	}
	if rows := dcRows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" {
		t.Fatalf("after the kill: dc-app rows %+v, want the PENDING row kept", rows)
	}
	// The killed process held its row for the lease (the cloud timeout
	// plus 30s) so that no replica replays a redemption still in flight;
	// the test stands for that minute passing instead of waiting it.
	dcExpireLease(t, dbPath)

	hold.holdRedemptions.Store(false)
	second := startDCBinary(t, bin, vars)
	deadline := time.Now().Add(10 * time.Second) // inside the retry's 15s period
	for {
		rows := dcRows(t, dbPath)
		if len(rows) == 1 && rows[0].Status == "LINKED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: dc-app rows %+v, want one LINKED row\n%s", rows, second.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	rows := dcRows(t, dbPath)
	var links []string
	rs, err := e.db.Query(`SELECT id FROM links WHERE sync_id = $1`, syncID)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id string
		_ = rs.Scan(&id)
		links = append(links, id)
	}
	rs.Close()
	if len(rows) != 1 || len(links) != 1 || rows[0].LinkID != links[0] {
		t.Fatalf("dc-app rows %+v, cloud-app links %v: want exactly one link on each side, the same one", rows, links)
	}
	if n := e.count(`SELECT COUNT(*) FROM links WHERE status = 'active'`); n != 1 {
		t.Errorf("active links on cloud-app: %d, want 1", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM syncs WHERE id = $1 AND status = 'SYNCED'`, syncID); n != 1 {
		t.Errorf("the Cloud sync is not SYNCED")
	}
	if n := hold.redemptions.Load(); n != 2 {
		t.Errorf("redemptions through the proxy: %d, want 2 (the first, then the start-up retry)", n)
	}
}

// buildDCApp builds the dc-app binary (a module of this workspace) into a
// temporary directory.
func buildDCApp(t *testing.T) string {
	t.Helper()
	// go test puts its own toolchain's bin directory first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build dc-app with: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dc-app")
	if b, err := exec.Command(goBin, "build", "-o", out, "spacesync.io/dc-app").CombinedOutput(); err != nil {
		t.Fatalf("go build spacesync.io/dc-app: %v\n%s", err, b)
	}
	return out
}

// syncLog is a goroutine-safe log sink.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// dcProcess is a dc-app binary running in the background.
type dcProcess struct {
	url  string
	cmd  *exec.Cmd
	logs *syncLog
	done chan error
}

// startDCBinary starts the binary with only vars (and a listen address)
// in its environment and waits until /readyz answers 200.
func startDCBinary(t *testing.T, bin string, vars map[string]string) *dcProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := []string{"DC_APP_ADDR=" + addr, "DC_APP_BASE_URL=http://" + addr}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := &dcProcess{url: "http://" + addr, logs: &syncLog{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.done:
			t.Fatalf("dc-app exited at start: %v\n%s", err, p.logs.String())
		default:
		}
		if resp, err := http.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc-app not ready within 30s\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown code runs.
func (p *dcProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("dc-app ended with %v, want killed by a signal", err)
	}
}

// holdingProxy forwards every request to upstream. While holdRedemptions
// is set, it forwards a redemption, reads cloud-app's answer, reports its
// status on held, and never answers the client.
type holdingProxy struct {
	upstream        string
	holdRedemptions atomic.Bool
	held            chan int
	redemptions     atomic.Int64
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	redemption := r.URL.Path == "/api/v1/redemptions"
	if redemption {
		p.redemptions.Add(1)
	}
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range r.Header {
		out.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if redemption && p.holdRedemptions.Load() {
		select {
		case p.held <- resp.StatusCode:
		default:
		}
		<-r.Context().Done() // until the client goes away
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// serveLoopback serves h on a new 127.0.0.1 port until the test ends.
func serveLoopback(t *testing.T, h http.Handler) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln
}

type dcRow struct{ ID, Status, LinkID string }

// dcRows reads dc-app's synced spaces straight from its database file.
func dcRows(t *testing.T, path string) []dcRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, status, link_id FROM synced_spaces ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []dcRow
	for rs.Next() {
		var r dcRow
		if err := rs.Scan(&r.ID, &r.Status, &r.LinkID); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// dcExpireLease ends the lease and wait of dc-app's PENDING row, as time
// passing would.
func dcExpireLease(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE synced_spaces SET lease_until = NULL, next_attempt_at = NULL WHERE status = 'PENDING'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("lease expired on %d rows, want 1", n)
	}
}
