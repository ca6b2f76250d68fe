package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/shared/dctest"
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
	bin := dctest.Build(t)
	fake := cloudtest.New(t)
	hold := &dctest.HoldingProxy{Held: make(chan int, 1)}
	proxy := dctest.ServeLoopback(t, hold)
	proxyURL := "http://" + proxy.Addr().String()
	// The token names the proxy as its cloud-app, and dc-app trusts only
	// the proxy: every call dc-app makes goes through it.
	hold.Upstream = fake.ServeAs(proxyURL)
	hold.Hold.Store(true)
	tok := fake.Mint(t, cloudtest.MintOptions{SpaceKey: "KILL", Space: "Kill Test"})

	dataDir := filepath.Join(t.TempDir(), "data")
	const password = "kill test password"
	vars := map[string]string{
		"DC_APP_DATA_DIR":           dataDir,
		"DC_APP_TRUSTED_CLOUD_URLS": proxyURL,
		"DC_APP_ADMIN_PASSWORD":     password,
	}

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

	// Cloud committed the redemption; its answer is held by the proxy.
	select {
	case st := <-hold.Held:
		if st != http.StatusCreated {
			t.Fatalf("Cloud answered the redemption %d, want 201", st)
		}
	case err := <-importDone:
		t.Fatalf("the import ended before Cloud answered: %v\n%s", err, first.Logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("the redemption never reached Cloud\n%s", first.Logs.String())
	}
	dbPath := filepath.Join(dataDir, "dc-app.db")
	if rows := dctest.Rows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" || rows[0].LinkID != "" {
		t.Fatalf("before the kill: synced spaces %+v, want one PENDING row without a link", rows)
	}
	if n := len(fake.ActiveLinks()); n != 1 {
		t.Fatalf("before the kill: Cloud holds %d active links, want 1", n)
	}

	first.Kill(t)
	select {
	case err := <-importDone:
		t.Logf("the import request ended with the process: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the import request outlived the killed process")
	}
	if rows := dctest.Rows(t, dbPath); len(rows) != 1 || rows[0].Status != "PENDING" {
		t.Fatalf("after the kill: synced spaces %+v, want the PENDING row kept", rows)
	}
	// The killed process held its row for the lease (the cloud timeout
	// plus 30s), so that no replica replays a redemption still in flight.
	// The test stands for that minute passing instead of waiting it.
	dctest.ExpireLease(t, dbPath)

	hold.Hold.Store(false)
	second := dctest.Start(t, bin, vars)
	// Well inside the retry's 15s period: the attempt made at start-up
	// must settle it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := dctest.Rows(t, dbPath)
		if len(rows) == 1 && rows[0].Status == "LINKED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: synced spaces %+v, want one LINKED row\n%s", rows, second.Logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Exactly one link on each side, and they are the same link.
	rows := dctest.Rows(t, dbPath)
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
	req, _ := http.NewRequest("GET", second.URL+"/api/v1/synced-spaces", nil)
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
