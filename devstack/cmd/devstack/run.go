package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"spacesync.io/devstack/confluencesim"
	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/secret"
	"spacesync.io/shared/server"
)

// stack is the resolved layout of the local stack.
type stack struct {
	dataDir        string
	confluenceAddr string // host:port, served as http://localhost:port
	cloudAddr      string
	dcAddr         string
	sendgridAddr   string
	lookup         func(string) (string, bool)
	out            io.Writer
	log            *slog.Logger
	// logBase is log without its svc attribute, for the simulators' own.
	logBase *slog.Logger
}

func (s *stack) confluenceURL() string { return "http://" + hostPort("localhost", s.confluenceAddr) }
func (s *stack) cloudURL() string      { return "http://" + hostPort("127.0.0.1", s.cloudAddr) }
func (s *stack) dcURL() string         { return "http://" + hostPort("127.0.0.1", s.dcAddr) }
func (s *stack) sendgridURL() string   { return "http://" + hostPort("127.0.0.1", s.sendgridAddr) }

// hostPort keeps addr's port and names it with host, the name browsers and
// the services use (localhost for the simulator, 127.0.0.1 for the apps, so
// the iframe is cross-site as in production).
func hostPort(host, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, port)
}

func (s *stack) get(name, def string) string {
	if v, ok := s.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	mode := "up"
	if len(args) > 0 {
		mode = args[0]
	}
	if mode != "up" && mode != "sims" {
		return fmt.Errorf("unknown command %q (want: devstack [up|sims])", mode)
	}
	s := &stack{lookup: lookup, out: out}
	s.logBase = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.log = s.logBase.With("svc", "devstack")
	s.dataDir = s.get("DEVSTACK_DATA_DIR", "data")
	if abs, err := filepath.Abs(s.dataDir); err == nil {
		s.dataDir = abs
	}
	s.confluenceAddr = s.get("CONFLUENCE_SIM_ADDR", "localhost:8080")
	s.cloudAddr = s.get("CLOUD_APP_ADDR", "127.0.0.1:8081")
	s.dcAddr = s.get("DC_APP_ADDR", "127.0.0.1:8082")
	s.sendgridAddr = s.get("SENDGRID_SIM_ADDR", "127.0.0.1:8083")
	if err := os.MkdirAll(filepath.Join(s.dataDir, "devstack"), 0o700); err != nil {
		return err
	}
	if mode == "sims" {
		return s.runSims(ctx)
	}
	return s.runUp(ctx)
}

// sendgridKey is the API key the SendGrid simulator accepts: SENDGRID_API_KEY
// when set, else one generated and kept in the data directory.
func (s *stack) sendgridKey() (string, error) {
	if v := s.get("SENDGRID_API_KEY", ""); v != "" {
		return v, nil
	}
	v, _, err := secret.LoadOrCreateFile(filepath.Join(s.dataDir, "devstack", "sendgrid-api-key"), func() (string, error) {
		return "SG." + randomString(24) + "." + randomString(32), nil
	})
	return v, err
}

// The Data Center admin. dc-app creates its admin account on its first
// start only, from DC_APP_ADMIN_USERNAME and DC_APP_ADMIN_PASSWORD, and
// ignores them afterwards. So the stack keeps what it passed on the first
// run (data/devstack/dc-admin-password, and dc-admin-username once dc-app
// has started with it) and shows that on every later run, whatever the
// variables say then.
type adminAccount struct {
	user, pass string
	// existing: dc-app created this account on an earlier run.
	existing bool
	// changed: the recorded password no longer signs in (it was changed
	// in dc-app), so the banner must not print it.
	changed bool
}

func (s *stack) adminFile(name string) string { return filepath.Join(s.dataDir, "devstack", name) }

// admin returns the account for the banner: on the first run the
// variables' values (or a generated password, kept in the data directory),
// afterwards the recorded ones, with a warning when the variables differ.
func (s *stack) admin() (adminAccount, error) {
	envUser, envPass := s.get("DC_APP_ADMIN_USERNAME", ""), s.get("DC_APP_ADMIN_PASSWORD", "")
	if b, err := os.ReadFile(s.adminFile("dc-admin-username")); err == nil {
		pass, err := os.ReadFile(s.adminFile("dc-admin-password"))
		if err != nil {
			return adminAccount{}, err
		}
		a := adminAccount{user: strings.TrimSpace(string(b)), pass: strings.TrimSpace(string(pass)), existing: true}
		if (envUser != "" && envUser != a.user) || (envPass != "" && envPass != a.pass) {
			s.log.Warn("DC_APP_ADMIN_USERNAME and DC_APP_ADMIN_PASSWORD apply on the first run only: dc-app's admin exists already, so they are ignored; change the password in dc-app (Change password), or start over with a new DEVSTACK_DATA_DIR")
		}
		return a, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return adminAccount{}, err
	}
	user := envUser
	if user == "" {
		user = "admin"
	}
	pass, _, err := secret.LoadOrCreateFile(s.adminFile("dc-admin-password"), func() (string, error) {
		if envPass != "" {
			return envPass, nil
		}
		return randomString(18), nil
	})
	if err != nil {
		return adminAccount{}, err
	}
	if envPass != "" && envPass != pass {
		// A first run that stopped before dc-app started kept another
		// password; the variable wins, as it will in dc-app.
		if err := os.WriteFile(s.adminFile("dc-admin-password"), []byte(envPass+"\n"), 0o600); err != nil {
			return adminAccount{}, err
		}
		pass = envPass
	}
	return adminAccount{user: user, pass: pass}, nil
}

// recordAdmin notes that dc-app has started with the account, so later
// runs know it exists.
func (s *stack) recordAdmin(a adminAccount) error {
	if a.existing {
		return nil
	}
	return os.WriteFile(s.adminFile("dc-admin-username"), []byte(a.user+"\n"), 0o600)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// servers runs the simulators' HTTP servers; they stop when ctx is done.
type servers struct {
	wg   sync.WaitGroup
	errc chan error
}

func (sv *servers) serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another stack running? set the *_ADDR variables)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	sv.wg.Add(2)
	go func() {
		defer sv.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sv.errc <- err
		}
	}()
	go func() {
		defer sv.wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return nil
}

func (s *stack) startSims(ctx context.Context, sv *servers) (*confluencesim.Sim, error) {
	key, err := s.sendgridKey()
	if err != nil {
		return nil, err
	}
	sg := sendgridsim.New(sendgridsim.Config{APIKey: key, Logger: s.logBase.With("svc", "sendgrid-sim")})
	if err := sv.serve(ctx, s.sendgridAddr, sg.Handler()); err != nil {
		return nil, err
	}
	cs, err := confluencesim.New(confluencesim.Config{
		PublicURL:        s.confluenceURL(),
		AppDescriptorURL: s.get("CLOUD_APP_BASE_URL", s.cloudURL()) + "/atlassian-connect.json",
		StateFile:        filepath.Join(s.dataDir, "devstack", "confluence-sim.json"),
		Logger:           s.logBase.With("svc", "confluence-sim"),
	})
	if err != nil {
		return nil, err
	}
	if err := sv.serve(ctx, s.confluenceAddr, cs.Handler()); err != nil {
		return nil, err
	}
	return cs, nil
}

func (s *stack) runSims(ctx context.Context) error {
	sv := &servers{errc: make(chan error, 4)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := s.startSims(ctx, sv)
	if err != nil {
		return err
	}
	if err := server.WaitOK(ctx, s.get("CLOUD_APP_BASE_URL", s.cloudURL())+"/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("cloud-app is not ready: %w", err)
	}
	if err := cs.Install(ctx); err != nil {
		return fmt.Errorf("install the app into the Confluence simulator: %w", err)
	}
	s.log.Info("simulators up", "confluence", s.confluenceURL()+"/wiki/", "sendgrid", s.sendgridURL())
	select {
	case <-ctx.Done():
	case err = <-sv.errc:
	}
	cancel()
	sv.wg.Wait()
	return err
}

func (s *stack) runUp(ctx context.Context) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	binDir := filepath.Dir(bin)
	for _, name := range []string{"cloud-app", "dc-app"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return fmt.Errorf("%s is not built next to devstack in %s: run `make build` (or `make run`)", name, binDir)
		}
	}
	sgKey, err := s.sendgridKey()
	if err != nil {
		return err
	}
	admin, err := s.admin()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sv := &servers{errc: make(chan error, 8)}
	cs, err := s.startSims(ctx, sv)
	if err != nil {
		return err
	}

	cloudEnv := map[string]string{
		"CLOUD_APP_ADDR":             s.cloudAddr,
		"CLOUD_APP_BASE_URL":         s.cloudURL(),
		"CLOUD_APP_DATA_DIR":         filepath.Join(s.dataDir, "cloud-app"),
		"CLOUD_APP_INSTALL_KEYS_URL": s.confluenceURL() + "/install-keys",
		"CLOUD_APP_PRODUCT_HOSTS":    "localhost",
		"MAIL_MODE":                  "sendgrid",
		"SENDGRID_API_KEY":           sgKey,
		"SENDGRID_API_URL":           s.sendgridURL(),
	}
	dcEnv := map[string]string{
		"DC_APP_ADDR":               s.dcAddr,
		"DC_APP_BASE_URL":           s.dcURL(),
		"DC_APP_DATA_DIR":           filepath.Join(s.dataDir, "dc-app"),
		"DC_APP_TRUSTED_CLOUD_URLS": s.cloudURL(),
	}
	if !admin.existing {
		dcEnv["DC_APP_ADMIN_USERNAME"] = admin.user
		dcEnv["DC_APP_ADMIN_PASSWORD"] = admin.pass
	}
	procs := []*proc{
		{name: "cloud-app", path: filepath.Join(binDir, "cloud-app"), env: s.childEnv(cloudEnv)},
		{name: "dc-app", path: filepath.Join(binDir, "dc-app"), env: s.childEnv(dcEnv)},
	}
	exited := make(chan *proc, len(procs))
	for _, p := range procs {
		if err := p.start(s.out, exited); err != nil {
			cancel()
			stopAll(procs)
			return err
		}
	}
	defer stopAll(procs)

	cloudBase := s.childValue(cloudEnv, "CLOUD_APP_BASE_URL")
	if err := server.WaitOK(ctx, cloudBase+"/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("cloud-app did not become ready: %w", err)
	}
	if err := server.WaitOK(ctx, s.childValue(dcEnv, "DC_APP_BASE_URL")+"/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("dc-app did not become ready: %w", err)
	}
	if err := s.recordAdmin(admin); err != nil {
		return err
	}
	if admin.existing {
		admin.changed = !signsIn(ctx, s.childValue(dcEnv, "DC_APP_BASE_URL"), admin)
	}
	if err := cs.Install(ctx); err != nil {
		return fmt.Errorf("install the app into the Confluence simulator: %w", err)
	}
	s.banner(admin)

	select {
	case <-ctx.Done():
		err = nil
	case p := <-exited:
		err = fmt.Errorf("%s exited: %v", p.name, p.err)
	case err = <-sv.errc:
	}
	s.log.Info("stopping")
	stopAll(procs)
	cancel()
	sv.wg.Wait()
	return err
}

// childEnv is this process's environment with the stack's defaults for the
// variables it does not set.
func (s *stack) childEnv(defaults map[string]string) []string {
	env := os.Environ()
	for k, v := range defaults {
		if _, ok := s.lookup(k); ok && strings.TrimSpace(s.get(k, "")) != "" {
			continue
		}
		env = append(env, k+"="+v)
	}
	return env
}

func (s *stack) childValue(defaults map[string]string, k string) string {
	return s.get(k, defaults[k])
}

// signsIn reports whether the recorded account still signs in to dc-app
// (HTTP Basic on its API). Only a definite 401 says no: the probe must not
// hide a working password because of a hiccup.
func signsIn(ctx context.Context, dcBase string, a adminAccount) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dcBase+"/api/v1/synced-spaces", nil)
	if err != nil {
		return true
	}
	req.SetBasicAuth(a.user, a.pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return true
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusUnauthorized
}

func (s *stack) banner(a adminAccount) {
	note, signIn := "", "sign in as "+a.user+" / "+a.pass
	if a.existing {
		note = "  The dc-app admin was created on the first run; if you changed its password in dc-app, use yours.\n"
	}
	if a.changed {
		signIn = "sign in as " + a.user + " with the password you set in dc-app"
		note = "  The first-run password (data/devstack/dc-admin-password) was changed in dc-app and no longer works.\n"
	}
	fmt.Fprintf(s.out, `
  Space Sync local stack is up.

    Confluence Cloud simulator   %s/wiki/        <- start here: open "Space Sync"
    cloud-app                    %s
    dc-app (Data Center)         %s/space-sync   %s
    SendGrid simulator           %s              (mails cloud-app sent)

%s  Data: %s    Stop: Ctrl-C

`, s.confluenceURL(), s.cloudURL(), s.dcURL(), signIn, s.sendgridURL(), note, s.dataDir)
}

// proc is a service child process whose output is prefixed with its name.
type proc struct {
	name string
	path string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) start(out io.Writer, exited chan<- *proc) error {
	p.cmd = exec.Command(p.path)
	p.cmd.Env = p.env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(out, "[%s] %s\n", p.name, sc.Text())
		}
		p.err = p.cmd.Wait()
		close(p.done)
		exited <- p
	}()
	return nil
}

func stopAll(procs []*proc) {
	for _, p := range procs {
		if p.cmd != nil && p.cmd.Process != nil && p.done != nil {
			select {
			case <-p.done:
				continue
			default:
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		if p.done == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}
