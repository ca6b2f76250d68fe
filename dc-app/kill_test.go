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
	"sync/atomic"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/protocol"
)

// Issue 8, "dc-app is killed between its pending row and activation": the
// real dc-app binary, configured only by the contract's variables, imports
// a token through a proxy that lets the redemption reach Cloud but holds
// back the answer. dc-app is SIGKILLed while its row is PENDING and Cloud
// already holds the link; the binary is started again on the same data
// directory, and its start-up retry replays the redemption. Exactly one
// link must exist on each side.
//
// Cloud is the strict cloudtest fake (it opens real tokens with real keys,
// stores only the link secret's hash and applies the replay rule of DESIGN
// section 5): cloud-app's run function lives in its own module's main
// package and cannot be called from here. cloud-app/kill_test.go runs the
// same scenario with this binary against the real cloud-app, in-process on
// Postgres.
func TestKill_BetweenPendingAndActivation(t *testing.T) {
	bin := buildDCApp(t)
	fake := cloudtest.New(t)
	hold := &holdingProxy{held: make(chan int, 1)}
	proxy := newLoopbackServer(t, hold)
	proxyURL := "http://" + proxy.Addr().String()
	// The token names the proxy as its cloud-app, and dc-app trusts only
	// the proxy: every call dc-app makes goes through it.
	hold.upstream = fake.ServeAs(proxyURL)
	hold.holdRedemptions.Store(true)
	tok := fake.Mint(t, cloudtest.MintOptions{SpaceKey: "KILL", Space: "Kill Test"})

	dataDir := filepath.Join(t.TempDir(), "data")
	const password = "kill test password"
	vars := map[string]string{
		"DC_APP_DATA_DIR":           dataDir,
		"DC_APP_TRUSTED_CLOUD_URLS": proxyURL,
		"DC_APP_ADMIN_PASSWORD":     password,
	}

	first := startBinary(t, bin, vars)
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

	// Cloud committed the redemption; its answer is held by the proxy.
	select {
	case st := <-hold.held:
		if st != http.StatusCreated {
			t.Fatalf("Cloud answered the redemption %d, want 201", st)
		}
	case err := <-importDone:
		t.Fatalf("the import ended before Cloud answered: %v\n%s", err, first.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("the redemption never reached Cloud\n%s", first.logs.String())
	}
	dbPath := filepath.Join(dataDir, "dc-app.db")
	if rows := syncedSpaces(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" || rows[0].LinkID != "" {
		t.Fatalf("before the kill: synced spaces %+v, want one PENDING row without a link", rows)
	}
	if n := len(fake.ActiveLinks()); n != 1 {
		t.Fatalf("before the kill: Cloud holds %d active links, want 1", n)
	}

	first.kill(t)
	select {
	case err := <-importDone:
		t.Logf("the import request ended with the process: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the import request outlived the killed process")
	}
	if rows := syncedSpaces(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" {
		t.Fatalf("after the kill: synced spaces %+v, want the PENDING row kept", rows)
	}
	// The killed process held its row for the lease (the cloud timeout
	// plus 30s), so that no replica replays a redemption still in flight.
	// The test stands for that minute passing instead of waiting it.
	expireLease(t, dbPath)

	hold.holdRedemptions.Store(false)
	second := startBinary(t, bin, vars)
	// Well inside the retry's 15s period: the attempt made at start-up
	// must settle it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := syncedSpaces(t, dbPath)
		if len(rows) == 1 && rows[0].Status == "LINKED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: synced spaces %+v, want one LINKED row\n%s", rows, second.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Exactly one link on each side, and they are the same link.
	rows := syncedSpaces(t, dbPath)
	links := fake.Links()
	if len(rows) != 1 || len(links) != 1 || !links[0].Active {
		t.Fatalf("dc-app rows %+v, Cloud links %+v: want exactly one linked pair", rows, links)
	}
	if rows[0].LinkID != links[0].ID || rows[0].TokenSealed != "" {
		t.Errorf("dc-app row %+v: want link %s and the token cleared", rows[0], links[0].ID)
	}
	if n := fake.Redeemed(); n != 1 {
		t.Errorf("Cloud created %d links, want 1 (the retry is a replay)", n)
	}
	if n := fake.Calls(protocol.PathRedemptions); n != 2 {
		t.Errorf("redemptions sent: %d, want 2 (the first, then the start-up retry)", n)
	}
	// The API agrees with the database.
	req, _ := http.NewRequest("GET", second.url+"/api/v1/synced-spaces", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Results []struct{ Status, LinkID string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Results) != 1 ||
		list.Results[0].Status != "LINKED" || list.Results[0].LinkID != links[0].ID {
		t.Errorf("GET /api/v1/synced-spaces: %+v, %v", list, err)
	}
}

// buildDCApp builds the dc-app binary into a temporary directory.
func buildDCApp(t *testing.T) string {
	t.Helper()
	// go test puts its own toolchain's bin directory first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build dc-app with: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dc-app")
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// process is a dc-app binary running in the background.
type process struct {
	url  string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

// startBinary starts the binary with only vars (and a listen address) in
// its environment and waits until /readyz answers 200.
func startBinary(t *testing.T, bin string, vars map[string]string) *process {
	t.Helper()
	addr := freeAddr(t)
	env := []string{"DC_APP_ADDR=" + addr, "DC_APP_BASE_URL=http://" + addr}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := &process{url: "http://" + addr, logs: &lockedBuffer{}, done: make(chan error, 1)}
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
func (p *process) kill(t *testing.T) {
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
// is set, it forwards a redemption, reads Cloud's answer, reports its
// status on held, and never answers the client. before, when set, runs
// before a request is forwarded (set it before any request).
type holdingProxy struct {
	upstream        string
	holdRedemptions atomic.Bool
	held            chan int
	before          func(path string)
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if p.before != nil {
		p.before(r.URL.Path)
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
	if r.URL.Path == protocol.PathRedemptions && p.holdRedemptions.Load() {
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

// newLoopbackServer serves h on a new 127.0.0.1 port until the test ends.
func newLoopbackServer(t *testing.T, h http.Handler) net.Listener {
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

type syncedSpaceRow struct {
	ID, Status, LinkID, TokenSealed string
}

// syncedSpaces reads dc-app's rows straight from its database file.
func syncedSpaces(t *testing.T, path string) []syncedSpaceRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, status, link_id, token_sealed FROM synced_spaces ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []syncedSpaceRow
	for rs.Next() {
		var r syncedSpaceRow
		if err := rs.Scan(&r.ID, &r.Status, &r.LinkID, &r.TokenSealed); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if out[i].TokenSealed != "" {
			out[i].TokenSealed = strings.Repeat("*", 3) // present; never printed
		}
	}
	return out
}

// expireLease ends the lease and wait of every PENDING row, as time
// passing would.
func expireLease(t *testing.T, path string) {
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
