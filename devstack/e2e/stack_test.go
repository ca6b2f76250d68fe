// Package e2e runs the whole local stack exactly as `make run` does — the
// devstack binary starting the Confluence Cloud simulator, the SendGrid
// simulator and the cloud-app and dc-app binaries built beside it — and
// drives the seed journey through it in headless Chromium, once on the
// embedded SQLite default and once on Postgres.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"spacesync.io/shared/server"
)

var updateDocs = flag.Bool("e2e.update-docs", false, "also write the README screenshots into docs/screenshots")

// repoRoot is the workspace root (the directory holding go.work).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.work above %s", dir)
		}
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds cloud-app, dc-app and devstack into one directory, as
// `make build` does into ./bin, once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "spacesync-e2e-bin-")
		if buildErr != nil {
			return
		}
		root := repoRoot(t)
		for _, b := range []struct{ name, pkg string }{
			{"cloud-app", "./cloud-app"},
			{"dc-app", "./dc-app"},
			{"devstack", "./devstack/cmd/devstack"},
		} {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(buildDir, b.name), b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// logBuffer collects the stack's combined output; it is safe for
// concurrent use and can wait for a line.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the output contains s, or done is closed, or the
// timeout passes.
func (l *logBuffer) waitFor(s string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		ok := strings.Contains(l.b.String(), s)
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-done:
			return errors.New("the process exited")
		case <-deadline:
			return fmt.Errorf("timed out after %v", timeout)
		}
	}
}

// tail is the last n lines of the output.
func (l *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stackConfig is what differs between runs of the stack.
type stackConfig struct {
	dataDir string
	// addrs are CONFLUENCE_SIM_ADDR, CLOUD_APP_ADDR, DC_APP_ADDR and
	// SENDGRID_SIM_ADDR.
	addrs map[string]string
	// env is added to the environment (the Postgres variables).
	env map[string]string
}

// newStackConfig picks free ports and a fresh data directory.
func newStackConfig(t *testing.T) stackConfig {
	return stackConfig{
		dataDir: filepath.Join(t.TempDir(), "data"),
		addrs: map[string]string{
			"CONFLUENCE_SIM_ADDR": "localhost:" + freePort(t),
			"CLOUD_APP_ADDR":      "127.0.0.1:" + freePort(t),
			"DC_APP_ADDR":         "127.0.0.1:" + freePort(t),
			"SENDGRID_SIM_ADDR":   "127.0.0.1:" + freePort(t),
		},
		env: map[string]string{},
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func (c stackConfig) confluenceURL() string {
	return "http://localhost:" + port(c.addrs["CONFLUENCE_SIM_ADDR"])
}
func (c stackConfig) cloudURL() string { return "http://127.0.0.1:" + port(c.addrs["CLOUD_APP_ADDR"]) }
func (c stackConfig) dcURL() string    { return "http://127.0.0.1:" + port(c.addrs["DC_APP_ADDR"]) }
func (c stackConfig) sendgridURL() string {
	return "http://127.0.0.1:" + port(c.addrs["SENDGRID_SIM_ADDR"])
}

// stack is one running devstack process.
type stack struct {
	t       *testing.T
	cfg     stackConfig
	cmd     *exec.Cmd
	out     *logBuffer
	done    chan struct{}
	waitErr error
	// children are the service processes devstack started.
	children []int
	// banner is the banner devstack printed once the stack was up.
	banner string
	// stopped is set once interrupt saw everything stop.
	stopped bool
}

// the environment variables a developer's shell might carry that would
// change the stack; the test sets what it needs explicitly.
var stackVars = []string{
	"DEVSTACK_DATA_DIR", "CONFLUENCE_SIM_ADDR", "CLOUD_APP_ADDR", "DC_APP_ADDR", "SENDGRID_SIM_ADDR",
	"CLOUD_APP_BASE_URL", "CLOUD_APP_DATABASE_URL", "CLOUD_APP_DATA_DIR", "CLOUD_APP_SECRET_KEY",
	"SPACESYNC_TOKEN_KEYS", "CLOUD_APP_KEY", "CLOUD_APP_TRUSTED_PROXIES", "CLOUD_APP_INSTALL_KEYS_URL",
	"CLOUD_APP_PRODUCT_HOSTS", "MAIL_MODE", "SENDGRID_API_KEY", "SENDGRID_API_URL", "MAIL_FROM",
	"DC_APP_BASE_URL", "DC_APP_DATABASE_URL", "DC_APP_DATA_DIR", "DC_APP_SECRET_KEY",
	"DC_APP_TRUSTED_PROXIES", "DC_APP_TRUSTED_CLOUD_URLS", "DC_APP_TRUSTED_SITES",
	"DC_APP_ADMIN_USERNAME", "DC_APP_ADMIN_PASSWORD", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy",
}

// startStack runs the devstack binary as `make run` does (./bin/devstack
// with the services built beside it), configured only by environment
// variables, and waits until it is up: the banner printed, both services
// ready, both simulators answering.
func startStack(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	bin := binaries(t)
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		skip := false
		for _, v := range stackVars {
			skip = skip || name == v
		}
		if !skip {
			env = append(env, kv)
		}
	}
	env = append(env, "DEVSTACK_DATA_DIR="+cfg.dataDir, "NO_PROXY=127.0.0.1,localhost")
	for k, v := range cfg.addrs {
		env = append(env, k+"="+v)
	}
	for k, v := range cfg.env {
		env = append(env, k+"="+v)
	}
	s := &stack{t: t, cfg: cfg, out: newLogBuffer(), done: make(chan struct{})}
	s.cmd = exec.Command(filepath.Join(bin, "devstack"))
	s.cmd.Env = env
	s.cmd.Dir = t.TempDir()
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	s.cmd.SysProcAttr = stackProcAttr()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start devstack: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.kill)

	if err := s.out.waitFor("Space Sync local stack is up.", s.done, 90*time.Second); err != nil {
		s.fatalf("the stack did not come up: %v", err)
	}
	if err := s.out.waitFor("Stop: Ctrl-C\n", s.done, 10*time.Second); err != nil {
		s.fatalf("the banner did not finish: %v", err)
	}
	out := s.out.String()
	i := strings.Index(out, "  Space Sync local stack is up.")
	s.banner = out[i : strings.Index(out[i:], "Stop: Ctrl-C\n")+i+len("Stop: Ctrl-C\n")]
	for _, u := range []string{cfg.cloudURL() + "/readyz", cfg.dcURL() + "/readyz", cfg.confluenceURL() + "/wiki/", cfg.sendgridURL() + "/"} {
		if err := server.WaitOK(context.Background(), u, 30*time.Second); err != nil {
			s.fatalf("%v", err)
		}
	}
	s.children = childPIDs(s.cmd.Process.Pid)
	if len(s.children) != 2 {
		s.fatalf("devstack has %d child processes %v, want cloud-app and dc-app", len(s.children), s.children)
	}
	return s
}

// fatalf fails the test with the tail of the stack's output.
func (s *stack) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s\n--- last lines of the stack's output ---\n%s", fmt.Sprintf(format, args...), s.out.tail(40))
}

// kill stops what is left of the stack after a failure: the devstack
// process group and the services' groups.
func (s *stack) kill() {
	if s.stopped {
		return // stopped cleanly; its process ids may be reused by now
	}
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, pid := range s.children {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	<-s.done
}

// interrupt sends SIGINT (Ctrl-C) to devstack and checks that it stops
// cleanly: exit status 0, its services gone, every port free again.
func (s *stack) interrupt() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		s.fatalf("SIGINT: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.fatalf("devstack did not stop within 30s of SIGINT")
	}
	if s.waitErr != nil {
		s.fatalf("devstack exited with %v after SIGINT, want status 0", s.waitErr)
	}
	for _, pid := range s.children {
		if err := waitGone(pid, 10*time.Second); err != nil {
			s.fatalf("%v", err)
		}
	}
	for name, addr := range s.cfg.addrs {
		if err := waitFree(addr, 10*time.Second); err != nil {
			s.fatalf("%s: %v", name, err)
		}
	}
	s.stopped = true
	// Each service shut down gracefully (it logs "stopped" last), after
	// devstack passed the signal on.
	out := s.out.String()
	i := strings.LastIndex(out, `msg=stopping svc=devstack`)
	if i < 0 {
		s.fatalf("devstack did not log that it was stopping")
	}
	for _, svc := range []string{"cloud-app", "dc-app"} {
		if !regexp.MustCompile(`(?m)^\[` + svc + `\] .*msg=stopped$`).MatchString(out[i:]) {
			s.fatalf("%s did not stop gracefully", svc)
		}
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// waitGone waits until pid no longer exists (or is a zombie nobody reaps,
// which cannot happen here: devstack waits for its children).
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d is still running after devstack stopped", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFree waits until addr can be listened on again.
func waitFree(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still in use after devstack stopped: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
