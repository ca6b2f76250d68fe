package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testStack(t *testing.T, dir string, env map[string]string) (*stack, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s := &stack{dataDir: dir, lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, out: &logs}
	s.logBase = slog.New(slog.NewTextHandler(&logs, nil))
	s.log = s.logBase.With("svc", "devstack")
	if err := os.MkdirAll(filepath.Join(dir, "devstack"), 0o700); err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

// dc-app creates its admin on its first start only: the banner must keep
// showing the account created then, whatever the variables say later.
func TestAdmin_FirstRunWinsAfterwards(t *testing.T) {
	dir := t.TempDir()
	s, _ := testStack(t, dir, map[string]string{"DC_APP_ADMIN_USERNAME": "ops", "DC_APP_ADMIN_PASSWORD": "FirstRunPass-12345"})
	a, err := s.admin()
	if err != nil || a != (adminAccount{user: "ops", pass: "FirstRunPass-12345"}) {
		t.Fatalf("first run: %+v, %v", a, err)
	}
	if err := s.recordAdmin(a); err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{
		nil,
		{"DC_APP_ADMIN_PASSWORD": "NewPassword-123456"},
		{"DC_APP_ADMIN_USERNAME": "bob"},
	} {
		s, logs := testStack(t, dir, env)
		a, err := s.admin()
		if err != nil || a != (adminAccount{user: "ops", pass: "FirstRunPass-12345", existing: true}) {
			t.Fatalf("later run with %v: %+v, %v", env, a, err)
		}
		if warned := strings.Contains(logs.String(), "apply on the first run only"); warned != (env != nil) {
			t.Errorf("later run with %v: warned %v; logs %s", env, warned, logs)
		}
		s.banner(a)
		if !strings.Contains(logs.String(), "sign in as ops / FirstRunPass-12345") || !strings.Contains(logs.String(), "created on the first run") {
			t.Errorf("banner: %s", logs)
		}
	}
}

func TestAdmin_GeneratedAndKept(t *testing.T) {
	dir := t.TempDir()
	s, _ := testStack(t, dir, nil)
	a, err := s.admin()
	if err != nil || a.user != "admin" || len(a.pass) < 12 || a.existing {
		t.Fatalf("first run: %+v, %v", a, err)
	}
	// Stopped before dc-app started: nothing recorded, the same password.
	again, err := s.admin()
	if err != nil || again != a {
		t.Fatalf("second first run: %+v, %v; want %+v", again, err, a)
	}
	info, err := os.Stat(filepath.Join(dir, "devstack", "dc-admin-password"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v", info, err)
	}
	// A first run given a password uses it even over a kept one.
	s, _ = testStack(t, dir, map[string]string{"DC_APP_ADMIN_PASSWORD": "Chosen-password-1"})
	if a, err := s.admin(); err != nil || a.pass != "Chosen-password-1" {
		t.Fatalf("first run with a password: %+v, %v", a, err)
	}
}

// A password changed in dc-app is not printed: the banner says to use the
// one set there. Only a definite 401 counts as changed.
func TestAdmin_ChangedPasswordNotPrinted(t *testing.T) {
	status := http.StatusUnauthorized
	dc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "first-run-password" || r.URL.Path != "/api/v1/synced-spaces" {
			t.Errorf("probe %s with %q %q", r.URL.Path, u, p)
		}
		w.WriteHeader(status)
	}))
	defer dc.Close()
	a := adminAccount{user: "admin", pass: "first-run-password", existing: true}
	if signsIn(context.Background(), dc.URL, a) {
		t.Error("a 401 counts as signing in")
	}
	status = http.StatusOK
	if !signsIn(context.Background(), dc.URL, a) {
		t.Error("a 200 counts as not signing in")
	}
	status = http.StatusServiceUnavailable
	if !signsIn(context.Background(), dc.URL, a) {
		t.Error("a 503 counts as a changed password")
	}

	s, logs := testStack(t, t.TempDir(), nil)
	a.changed = true
	s.banner(a)
	if out := logs.String(); strings.Contains(out, a.pass) || !strings.Contains(out, "sign in as admin with the password you set in dc-app") {
		t.Errorf("banner for a changed password:\n%s", out)
	}
}
