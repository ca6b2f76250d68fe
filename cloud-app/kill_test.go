package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/dctest"
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
	bin := dctest.Build(t)
	hold := &dctest.HoldingProxy{Held: make(chan int, 1)}
	proxyLn := dctest.ServeLoopback(t, hold)
	proxyURL := "http://" + proxyLn.Addr().String()
	e := newFaultEnv(t, faultOptions{PublicURL: proxyURL, Listening: func(u string) { hold.Upstream = u }})
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
	hold.Hold.Store(true)
	first := dctest.Start(t, bin, vars)
	importDone := make(chan error, 1)
	go func() {
		body, _ := json.Marshal(map[string]string{"token": tok, "name": "Killed import"})
		req, _ := http.NewRequest("POST", first.URL+"/api/v1/synced-spaces", bytes.NewReader(body))
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
	case st := <-hold.Held:
		if st != http.StatusCreated {
			t.Fatalf("cloud-app answered the redemption %d, want 201", st)
		}
	case err := <-importDone:
		t.Fatalf("the import ended before cloud-app answered: %v\n%s", err, first.Logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("the redemption never reached cloud-app\n%s", first.Logs.String())
	}
	dbPath := filepath.Join(dataDir, "dc-app.db")
	if rows := dctest.Rows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" || rows[0].LinkID != "" {
		t.Fatalf("before the kill: dc-app rows %+v, want one PENDING row without a link", rows)
	}
	if n := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = $1 AND status = 'active'`, syncID); n != 1 {
		t.Fatalf("before the kill: cloud-app holds %d active links, want 1", n)
	}

	first.Kill(t)
	select {
	case err := <-importDone:
		t.Logf("the import request ended with the process: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the import request outlived the killed process")
	}
	if rows := dctest.Rows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" {
		t.Fatalf("after the kill: dc-app rows %+v, want the PENDING row kept", rows)
	}
	// The killed process held its row for the lease (the cloud timeout
	// plus 30s) so that no replica replays a redemption still in flight;
	// the test stands for that minute passing instead of waiting it.
	dctest.ExpireLease(t, dbPath)

	hold.Hold.Store(false)
	second := dctest.Start(t, bin, vars)
	deadline := time.Now().Add(10 * time.Second) // inside the retry's 15s period
	for {
		rows := dctest.Rows(t, dbPath)
		if len(rows) == 1 && rows[0].Status == "LINKED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: dc-app rows %+v, want one LINKED row\n%s", rows, second.Logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	rows := dctest.Rows(t, dbPath)
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
	if n := hold.Redemptions.Load(); n != 2 {
		t.Errorf("redemptions through the proxy: %d, want 2 (the first, then the start-up retry)", n)
	}
}
