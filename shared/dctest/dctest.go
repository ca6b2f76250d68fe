// Package dctest runs the dc-app binary for tests that must kill it for
// real (the lost-answer and kill tests of cloud-app and dc-app): build it,
// start it configured only by environment variables, hold back Cloud's
// answers to its redemptions, and read its SQLite rows from outside.
package dctest

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver

	"spacesync.io/shared/protocol"
)

// Build compiles spacesync.io/dc-app into a temporary directory and
// returns the binary's path.
func Build(t *testing.T) string {
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

// Log is a goroutine-safe log sink.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *Log) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// Process is a dc-app binary running in the background.
type Process struct {
	URL  string
	Logs *Log
	cmd  *exec.Cmd
	done chan error
}

// Start starts bin with only vars (and a listen address) in its
// environment and waits until /readyz answers 200.
func Start(t *testing.T, bin string, vars map[string]string) *Process {
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
	p := &Process{URL: "http://" + addr, Logs: &Log{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.Logs, p.Logs
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
			t.Fatalf("dc-app exited at start: %v\n%s", err, p.Logs.String())
		default:
		}
		if resp, err := http.Get(p.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc-app not ready within 30s\n%s", p.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL (no shutdown code runs) and checks the process died
// of it.
func (p *Process) Kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("dc-app ended with %v, want killed by a signal", err)
	}
}

// HoldingProxy forwards every request to Upstream. While Hold is set, it
// forwards a redemption, reads Cloud's answer, reports its status on Held,
// and never answers the client. Before, when set, runs before a request is
// forwarded (set it before any request).
type HoldingProxy struct {
	Upstream    string
	Hold        atomic.Bool
	Held        chan int
	Before      func(path string)
	Redemptions atomic.Int64
}

func (p *HoldingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	redemption := r.URL.Path == protocol.PathRedemptions
	if redemption {
		p.Redemptions.Add(1)
	}
	if p.Before != nil {
		p.Before(r.URL.Path)
	}
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.Upstream+r.URL.RequestURI(), bytes.NewReader(body))
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
	if redemption && p.Hold.Load() {
		select {
		case p.Held <- resp.StatusCode:
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

// ServeLoopback serves h on a new 127.0.0.1 port until the test ends.
func ServeLoopback(t *testing.T, h http.Handler) net.Listener {
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

// Row is a dc-app synced space as its database holds it. TokenSealed is
// "***" when a sealed token is present, so that it is never printed.
type Row struct{ ID, Status, LinkID, TokenSealed string }

// Rows reads dc-app's synced spaces straight from its SQLite file.
func Rows(t *testing.T, path string) []Row {
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
	var out []Row
	for rs.Next() {
		var r Row
		if err := rs.Scan(&r.ID, &r.Status, &r.LinkID, &r.TokenSealed); err != nil {
			t.Fatal(err)
		}
		if r.TokenSealed != "" {
			r.TokenSealed = "***"
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ExpireLease ends the lease and wait of dc-app's one PENDING row, as time
// passing would.
func ExpireLease(t *testing.T, path string) {
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
