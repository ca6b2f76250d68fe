package main

import (
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/env"
	"spacesync.io/shared/secret"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// started is a dc-app started by run in the background.
type started struct {
	url  string
	stop func() error
}

// start runs dc-app with vars until the test ends or stop is called.
func start(t *testing.T, vars map[string]string) started {
	t.Helper()
	vars["DC_APP_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, env.FromMap(vars), io.Discard, io.Discard, func(a net.Addr) { addrc <- a }) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() { cancel(); stopErr = <-errc })
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-addrc:
		return started{url: "http://" + a.String(), stop: stop}
	case err := <-errc:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dc-app did not start within 30s")
	}
	return started{}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRun_EmbeddedDefaultKeepsDataAndSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, map[string]string{"DC_APP_DATA_DIR": dir})
	for _, p := range []string{"/healthz", "/readyz"} {
		if got := status(t, s.url+p); got != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, got)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	files := map[string][]byte{}
	for _, name := range []string{"secret.key", "dc-app.db"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s not created: %v", name, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, perm)
		}
		files[name], _ = os.ReadFile(p)
	}
	// Data written between two runs is still there after the second start.
	db, err := sql.Open("sqlite", filepath.Join(dir, "dc-app.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO audit_events (id, actor, action, created_at) VALUES ('keep-me', 'test', 'test', CURRENT_TIMESTAMP)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = start(t, map[string]string{"DC_APP_DATA_DIR": dir})
	if got := status(t, s.url+"/readyz"); got != http.StatusOK {
		t.Errorf("GET /readyz after restart = %d, want 200", got)
	}
	s.stop()
	for _, name := range []string{"secret.key"} {
		again, _ := os.ReadFile(filepath.Join(dir, name))
		if string(again) != string(files[name]) {
			t.Errorf("%s changed across a restart", name)
		}
	}
	db, _ = sql.Open("sqlite", filepath.Join(dir, "dc-app.db"))
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE id = 'keep-me'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("row written before the restart: count %d, err %v; want 1", n, err)
	}
}

func TestRun_BadConfigStopsWithOneLine(t *testing.T) {
	good := secret.NewKey().Encode()
	tests := []struct {
		name    string
		vars    map[string]string
		wantVar string
	}{
		{"secret key wrong length", map[string]string{"DC_APP_SECRET_KEY": "abcd"}, "DC_APP_SECRET_KEY"},
		{"plain http outside dev mode", map[string]string{"DC_APP_BASE_URL": "http://dc.example.com"}, "DC_APP_BASE_URL"},
		{"untrusted plain http cloud url", map[string]string{"DC_APP_TRUSTED_CLOUD_URLS": "http://cloud.example.com"}, "DC_APP_TRUSTED_CLOUD_URLS"},
		{"cloud url with a query", map[string]string{"DC_APP_TRUSTED_CLOUD_URLS": "https://cloud.example.com/?a=b"}, "DC_APP_TRUSTED_CLOUD_URLS"},
		{"bad site url", map[string]string{"DC_APP_TRUSTED_SITES": "ftp://x.atlassian.net"}, "DC_APP_TRUSTED_SITES"},
		{"bad listen address", map[string]string{"DC_APP_ADDR": "8082"}, "DC_APP_ADDR"},
		{"short admin password", map[string]string{"DC_APP_ADMIN_PASSWORD": "short"}, "DC_APP_ADMIN_PASSWORD"},
		{"bad proxy", map[string]string{"DC_APP_TRUSTED_PROXIES": "nonsense"}, "DC_APP_TRUSTED_PROXIES"},
		{"database without secret", map[string]string{"DC_APP_DATABASE_URL": "postgres://127.0.0.1:1/x"}, "DC_APP_SECRET_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vars["DC_APP_DATA_DIR"] = t.TempDir()
			err := run(context.Background(), env.FromMap(tt.vars), io.Discard, io.Discard, nil)
			if err == nil {
				t.Fatal("run: got nil, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantVar) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tt.wantVar)
			}
		})
	}
	// The valid twin: good values of the same variables start.
	s := start(t, map[string]string{
		"DC_APP_DATA_DIR":           t.TempDir(),
		"DC_APP_SECRET_KEY":         good,
		"DC_APP_TRUSTED_CLOUD_URLS": "https://cloud.example.com,http://127.0.0.1:8081",
		"DC_APP_TRUSTED_SITES":      "https://x.atlassian.net",
		"DC_APP_ADMIN_PASSWORD":     "a-long-enough-password",
		"DC_APP_TRUSTED_PROXIES":    "10.0.0.0/8,192.0.2.1",
	})
	if got := status(t, s.url+"/healthz"); got != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", got)
	}
}

func TestRun_PostgresReadinessFollowsTheDatabase(t *testing.T) {
	c, err := dbtest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove()
	s := start(t, map[string]string{
		"DC_APP_DATABASE_URL": c.URL("postgres"),
		"DC_APP_DATA_DIR":     t.TempDir(),
		"DC_APP_SECRET_KEY":   secret.NewKey().Encode(),
	})
	if got := status(t, s.url+"/readyz"); got != http.StatusOK {
		t.Fatalf("GET /readyz = %d, want 200", got)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := status(t, s.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database stopped = %d, want 503", got)
	}
	if got := status(t, s.url+"/healthz"); got != http.StatusOK {
		t.Errorf("GET /healthz with the database stopped = %d, want 200", got)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for status(t, s.url+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after the database came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
