package confluencesim_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/devstack/confluencesim/internal/connectjwt"
)

// testKey is one RSA key shared by the tests, to save generation time.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// lifecycleCall is one lifecycle callback the app stub received.
type lifecycleCall struct {
	Path          string
	Authorization string
	Body          map[string]any
}

// appStub is an httptest Connect app: it serves a descriptor and records
// lifecycle callbacks, answering with status (200 by default).
type appStub struct {
	srv        *httptest.Server
	basePath   string
	mu         sync.Mutex
	calls      []lifecycleCall
	status     int
	descriptor map[string]any
}

func newAppStub(t *testing.T, basePath string) *appStub {
	t.Helper()
	a := &appStub{basePath: basePath, status: http.StatusOK}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	a.descriptor = map[string]any{
		"key":            "space-sync-test",
		"name":           "Space Sync",
		"baseUrl":        a.srv.URL + basePath,
		"authentication": map[string]any{"type": "jwt"},
		"lifecycle": map[string]any{
			"installed": "/lifecycle/installed", "uninstalled": "/lifecycle/uninstalled",
			"enabled": "/lifecycle/enabled", "disabled": "/lifecycle/disabled",
		},
		"scopes":        []string{"READ"},
		"apiMigrations": map[string]any{"signed-install": true, "context-qsh": true},
		"modules": map[string]any{"generalPages": []any{
			map[string]any{"key": "space-sync", "name": map[string]any{"value": "Space Sync"}, "url": "/pages/space-sync", "location": "system.header/left"},
			map[string]any{"key": "help", "name": map[string]any{"value": "Help"}, "url": "/pages/help?space_key={space.key}"},
		}},
	}
	return a
}

func (a *appStub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/atlassian-connect.json" {
		a.mu.Lock()
		b, _ := json.Marshal(a.descriptor)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, a.basePath+"/lifecycle/") {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		a.mu.Lock()
		a.calls = append(a.calls, lifecycleCall{Path: r.URL.RequestURI(), Authorization: r.Header.Get("Authorization"), Body: body})
		status := a.status
		a.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	http.NotFound(w, r)
}

func (a *appStub) descriptorURL() string { return a.srv.URL + "/atlassian-connect.json" }

func (a *appStub) setStatus(code int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = code
}

func (a *appStub) setDescriptor(key string, v any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.descriptor[key] = v
}

func (a *appStub) takeCalls() []lifecycleCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.calls
	a.calls = nil
	return c
}

// harness is a simulator served by httptest with an app stub.
type harness struct {
	sim *confluencesim.Sim
	srv *httptest.Server
	app *appStub
	log *bytes.Buffer
}

type harnessOpts struct {
	seed      *confluencesim.Seed
	basePath  string
	stateFile string
	secret    string
	noInstall bool
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{app: newAppStub(t, o.basePath), log: &bytes.Buffer{}}
	var handler http.Handler = http.NotFoundHandler()
	var mu sync.RWMutex
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		hd := handler
		mu.RUnlock()
		hd.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	sim, err := confluencesim.New(confluencesim.Config{
		PublicURL:        h.srv.URL,
		AppDescriptorURL: h.app.descriptorURL(),
		Seed:             o.seed,
		SharedSecret:     o.secret,
		StateFile:        o.stateFile,
		RSAKey:           testKey(),
		Logger:           slog.New(slog.NewTextHandler(&lockedWriter{w: h.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sim = sim
	mu.Lock()
	handler = sim.Handler()
	mu.Unlock()
	if !o.noInstall {
		if err := sim.Install(context.Background()); err != nil {
			t.Fatalf("Install: %v", err)
		}
		h.app.takeCalls()
	}
	return h
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// appToken signs a request to the simulator as the app would: iss = app
// key, HS256 with the shared secret, qsh relative to /wiki.
func (h *harness) appToken(t *testing.T, method, pathAndQuery string) string {
	t.Helper()
	return signAs(t, "space-sync-test", h.sim.SharedSecret(), method, pathAndQuery)
}

func signAs(t *testing.T, iss, secret, method, pathAndQuery string) string {
	t.Helper()
	path, query := connectjwt.SplitURL(pathAndQuery)
	qsh, err := connectjwt.QSH(method, path, query, "/wiki")
	if err != nil {
		t.Fatalf("qsh: %v", err)
	}
	now := time.Now()
	tok, err := connectjwt.SignHS256(connectjwt.Claims{Iss: iss, Iat: now.Unix(), Exp: now.Add(3 * time.Minute).Unix(), Qsh: qsh}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get calls the simulator as the app, with a correct JWT.
func (h *harness) get(t *testing.T, pathAndQuery string) (*http.Response, []byte) {
	t.Helper()
	return h.do(t, http.MethodGet, pathAndQuery, "JWT "+h.appToken(t, http.MethodGet, pathAndQuery))
}

func (h *harness) do(t *testing.T, method, pathAndQuery, authorization string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
