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

// started is a cloud-app started by run in the background.
type started struct {
	url  string
	stop func() error
}

// start runs cloud-app with vars until the test ends or stop is called. It
// listens on CLOUD_APP_ADDR when vars set it, else on a free loopback port.
func start(t *testing.T, vars map[string]string) started {
	t.Helper()
	if vars["CLOUD_APP_ADDR"] == "" {
		vars["CLOUD_APP_ADDR"] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, env.FromMap(vars), io.Discard, func(a net.Addr) { addrc <- a }) }()
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
		t.Fatal("cloud-app did not start within 30s")
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
	s := start(t, map[string]string{"CLOUD_APP_DATA_DIR": dir})
	for _, p := range []string{"/healthz", "/readyz"} {
		if got := status(t, s.url+p); got != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, got)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	files := map[string][]byte{}
	for _, name := range []string{"secret.key", "token-keys", "cloud-app.db"} {
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
	db, err := sql.Open("sqlite", filepath.Join(dir, "cloud-app.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO audit_events (id, tenant_id, actor, action, created_at) VALUES ('keep-me', 't', 'test', 'test', CURRENT_TIMESTAMP)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = start(t, map[string]string{"CLOUD_APP_DATA_DIR": dir})
	if got := status(t, s.url+"/readyz"); got != http.StatusOK {
		t.Errorf("GET /readyz after restart = %d, want 200", got)
	}
	s.stop()
	for _, name := range []string{"secret.key", "token-keys"} {
		again, _ := os.ReadFile(filepath.Join(dir, name))
		if string(again) != string(files[name]) {
			t.Errorf("%s changed across a restart", name)
		}
	}
	db, _ = sql.Open("sqlite", filepath.Join(dir, "cloud-app.db"))
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
		{"token key too short", map[string]string{"SPACESYNC_TOKEN_KEYS": "k1:" + good[:20]}, "SPACESYNC_TOKEN_KEYS"},
		{"token key bad base64", map[string]string{"SPACESYNC_TOKEN_KEYS": "k1:" + strings.Repeat("!", 43)}, "SPACESYNC_TOKEN_KEYS"},
		{"duplicate kid", map[string]string{"SPACESYNC_TOKEN_KEYS": "k1:" + good + ",k1:" + good}, "SPACESYNC_TOKEN_KEYS"},
		{"secret key wrong length", map[string]string{"CLOUD_APP_SECRET_KEY": "abcd"}, "CLOUD_APP_SECRET_KEY"},
		{"plain http outside dev mode", map[string]string{"CLOUD_APP_BASE_URL": "http://spacesync.example.com"}, "CLOUD_APP_BASE_URL"},
		{"bad listen address", map[string]string{"CLOUD_APP_ADDR": "8081"}, "CLOUD_APP_ADDR"},
		{"unknown mail mode", map[string]string{"MAIL_MODE": "smtp"}, "MAIL_MODE"},
		{"sendgrid without key", map[string]string{"MAIL_MODE": "sendgrid"}, "SENDGRID_API_KEY"},
		{"bad proxy cidr", map[string]string{"CLOUD_APP_TRUSTED_PROXIES": "10.0.0.0/99"}, "CLOUD_APP_TRUSTED_PROXIES"},
		{"database without secrets", map[string]string{"CLOUD_APP_DATABASE_URL": "postgres://127.0.0.1:1/x"}, "CLOUD_APP_SECRET_KEY"},
		{"database not postgres", map[string]string{"CLOUD_APP_DATABASE_URL": "mysql://x"}, "CLOUD_APP_DATABASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vars["CLOUD_APP_DATA_DIR"] = t.TempDir()
			err := run(context.Background(), env.FromMap(tt.vars), io.Discard, nil)
			if err == nil {
				t.Fatal("run: got nil, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantVar) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tt.wantVar)
			}
			if strings.Contains(msg, good) {
				t.Errorf("error %q repeats the key material", msg)
			}
		})
	}
	// The valid twin: the same shapes with good values start.
	s := start(t, map[string]string{
		"CLOUD_APP_DATA_DIR":   t.TempDir(),
		"SPACESYNC_TOKEN_KEYS": "k2:" + good + ",k1:" + secret.NewKey().Encode(),
		"CLOUD_APP_SECRET_KEY": secret.NewKey().Encode(),
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
		"CLOUD_APP_DATABASE_URL": c.URL("postgres"),
		"CLOUD_APP_DATA_DIR":     t.TempDir(),
		"CLOUD_APP_SECRET_KEY":   secret.NewKey().Encode(),
		"SPACESYNC_TOKEN_KEYS":   "k1:" + secret.NewKey().Encode(),
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
